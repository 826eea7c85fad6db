"""Bundled notebook cell types (query, markdown, sql, events); tessera.core.notebook.cells
loads them by name and finds others through the ``tessera.cells`` entry-point group."""
