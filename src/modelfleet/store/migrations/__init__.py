"""Alembic migrations of the metadata database (SQLite and PostgreSQL alike); db.py runs them."""
