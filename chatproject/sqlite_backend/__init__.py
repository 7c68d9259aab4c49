"""Django's SQLite backend with savepoints run on the driver (see base.py)."""
