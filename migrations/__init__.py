"""Alembic migrations (Postgres in production, SQLite in the embedded default)."""
