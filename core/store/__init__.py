"""The store: the data home's SQLite database (db.py); notebooks and events build on it."""
