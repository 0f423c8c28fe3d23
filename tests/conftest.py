"""Shared fixtures: the real broker and PostgreSQL, fresh databases and unique topic names.

Integration tests run against real services started once per session: the embedded Tansu
broker, and PostgreSQL (``VITMON_DATABASE_URL`` if reachable, else a local server on 5432, else
an embedded one). Each test module gets its own database and each test its own topics, so
tests never see each other's data. Tests that use these fixtures are marked ``integration``
automatically (``pytest -m "not integration"`` runs the fast tier).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from uuid import uuid4

# Imported at collection, not first at the end-of-run summary by its pytest plugin: there,
# deep in pluggy's stack, CPython 3.11.7's parser fails with "AST constructor recursion depth
# mismatch" and a run of only non-hypothesis test files exits 1 after every test passed.
import hypothesis  # noqa: F401
import pytest
from sqlalchemy import Engine

from monitor.devstack.broker import EmbeddedBroker
from monitor.devstack.postgres import EmbeddedPostgres
from monitor.store import migrate
from monitor.store.db import check_database, create_database, drop_database, make_engine
from tests.alertmanager_support import Alertmanager

LOCAL_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SERVICE_FIXTURES = frozenset({"broker", "pg_admin_url", "fresh_db_url", "db_url_factory",
                              "migrated_engine"})


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python loads its protocol schemas through importlib.resources' legacy API
    for message in ("read_text is deprecated", "open_text is deprecated"):
        config.addinivalue_line("filterwarnings", f"ignore:{message}:DeprecationWarning")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a real service as ``integration``."""
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A running Tansu broker for the whole session (memory storage: empty at start)."""
    with EmbeddedBroker(log_dir=tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server on which tests may create and drop databases."""
    for candidate in (os.environ.get("VITMON_DATABASE_URL"), LOCAL_POSTGRES_URL):
        if candidate and check_database(candidate, timeout_s=2) is None:
            yield candidate
            return
    # fsync off: a throwaway cluster; durability across an OS crash is not under test
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", settings={"fsync": "off"})
    with server:
        yield server.url


def _unique_db_name() -> str:
    return f"vitmon_test_{uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def fresh_db_url(pg_admin_url: str) -> Iterator[str]:
    """A database created for this test module (empty: no migrations), dropped after it."""
    name = _unique_db_name()
    url = create_database(pg_admin_url, name)
    yield url
    drop_database(pg_admin_url, name)


@pytest.fixture(scope="module")
def migrated_engine(fresh_db_url: str) -> Iterator[Engine]:
    """An engine on this module's database, migrated to head."""
    migrate.upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_url_factory(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Call it for another new, empty database; all of them are dropped after the test."""
    names: list[str] = []

    def make() -> str:
        names.append(_unique_db_name())
        return create_database(pg_admin_url, names[-1])

    yield make
    for name in names:
        drop_database(pg_admin_url, name)


@pytest.fixture
def alertmanager(tmp_path: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    """A real Alertmanager (Debian's ``prometheus-alertmanager``) on a free port, for this test."""
    am = Alertmanager(tmp_path)
    am.start()
    yield am
    am.stop()


@pytest.fixture
def topic_names() -> Callable[..., str]:
    """A function returning a new unique topic name on every call.

    ``topic_names()`` -> ``"t1a2b3c4d"`` (a base to extend), ``topic_names("vit.predictions")``
    -> ``"t5e6f7a8b.vit.predictions"``. The broker is shared by the session, so unique names
    are what keep one test's records out of another's.
    """

    def make(suffix: str = "") -> str:
        base = f"t{uuid4().hex[:8]}"
        return f"{base}.{suffix}" if suffix else base

    return make


@pytest.fixture(scope="session")
def traffic():
    """The detector unit tests' stationary synthetic traffic (32-d embeddings): a frozen,
    deterministic model, so one instance serves every test that draws from it."""
    from detectors.synthetic import Traffic  # here, not at the top: integration runs need no detectors

    return Traffic(seed=1, dim=32)
