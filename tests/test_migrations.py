"""`alembic upgrade head` builds exactly the schema the models describe (no drift), and can be
run twice and concurrently-safe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from monitor.store import migrate
from monitor.store.db import normalise_url
from monitor.store.schema import Base


def test_migrations_match_the_models_and_are_idempotent(fresh_db_url):
    migrate.upgrade(fresh_db_url)
    migrate.upgrade(fresh_db_url)  # a second run is a no-op
    engine = create_engine(normalise_url(fresh_db_url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
    assert migrate.current_heads(fresh_db_url) == [migrate.head_revision()]
