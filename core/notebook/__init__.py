"""Notebooks (DESIGN §7): CRDT documents of cells laid out in rows, kept in the store.

model.py   the document: title, rows of 1, 2 or 4 cells, cell attributes; edits; to_dict
store.py   persistence (binary updates, compacted), addresses NAME / NAME/N, events per change
ipynb.py   import/export through nbformat; markdown.py: the git-friendly fenced-block format
cells.py   the cell-type registry (bundled types in plugins/cells, others by entry point) and runs
"""
