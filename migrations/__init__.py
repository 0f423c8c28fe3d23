"""Alembic migrations for the vitmon schema."""
