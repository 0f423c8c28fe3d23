"""Alembic migrations for the vitmon schema (``monitor/store/schema.py`` describes the same
schema; ``tests/test_migrations.py`` checks they agree). :mod:`.columns` writes tables compactly;
migrations import nothing of ``monitor`` but the schema (in ``env.py``), so an old migration
never changes meaning."""
