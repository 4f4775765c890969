"""Persistence: SQLAlchemy models, engine/session factory. Shared by the API and the worker."""
