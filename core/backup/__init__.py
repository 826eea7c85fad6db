"""Backups of the data home: ``tessera backup`` writes one compressed (optionally sealed) file
holding a consistent copy; ``tessera restore`` verifies one whole before it replaces the home.
See docs/backup.md."""
