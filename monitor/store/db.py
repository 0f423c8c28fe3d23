"""Database connections: engine creation, credential masking, retry with backoff, and the
admin helpers (reachability, create/drop database) the dev stack and the tests use."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError

from monitor.errors import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")


def mask_url(url: str) -> str:
    """The URL with its password replaced, for logs and error messages.

    >>> mask_url("postgresql+psycopg://vitmon:s3cret@db:5432/vitmon")
    'postgresql+psycopg://vitmon:***@db:5432/vitmon'
    """
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: show nothing of it
        return "<unparseable url>"


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    try:
        return create_engine(normalise_url(url), pool_pre_ping=True, pool_size=4,
                             connect_args={"connect_timeout": 5})
    except Exception as exc:
        raise ConfigError("database.url", f"{mask_url(url)} is not a usable URL ({exc})") from None


def check_reachable(url: str) -> None:
    """Raise ConfigError naming VITMON_DATABASE_URL when the server cannot be reached."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unreachable"
        raise ConfigError("database.url (VITMON_DATABASE_URL)",
                          f"cannot connect to {mask_url(url)}: {reason}") from None
    finally:
        engine.dispose()


#: serialisation failure, deadlock, server shutdown, connection failures
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "08000", "08003",
                                  "08006"})


def is_transient(exc: BaseException) -> bool:
    """Connection loss, server shutdown, deadlock or serialisation failure: retry the checkpoint.
    Statements on the driver's own cursor (COPY, binary arrays) raise psycopg's errors, not
    SQLAlchemy's: a deadlock between two processes' checkpoints there is as transient."""
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or getattr(exc.orig, "sqlstate", "") in \
            _TRANSIENT_SQLSTATES
    return getattr(exc, "sqlstate", None) in _TRANSIENT_SQLSTATES


def with_retry(fn: Callable[[], T], *, initial_s: float, max_s: float,
               should_stop: Callable[[], bool] = lambda: False, what: str = "checkpoint") -> T:
    """Call ``fn`` until it succeeds, sleeping with exponential backoff on transient errors."""
    delay = initial_s
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc) or should_stop():
                raise
            attempt += 1
            first = str(getattr(exc, "orig", exc)).strip().splitlines()
            log.warning("database unavailable, waiting what=%s attempt=%d retry_in_s=%.1f error=%r",
                        what, attempt, delay, first[0] if first else type(exc).__name__)
            until = time.monotonic() + delay
            while time.monotonic() < until and not should_stop():  # a stop ends the wait
                time.sleep(min(0.2, max(until - time.monotonic(), 0)))
            delay = min(delay * 2, max_s)


def _libpq_url(url: str) -> str:
    """SQLAlchemy URL -> libpq URI for psycopg (drops the ``+driver`` suffix)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def check_database(url: str, timeout_s: float = 3.0) -> str | None:
    """None when ``url`` accepts a connection within ``timeout_s``, else a one-line reason.

    The reason never contains the password (libpq messages name host and user only).
    """
    import psycopg

    try:
        conninfo = _libpq_url(url)
    except Exception:  # noqa: BLE001 - any parse error means "not a database URL"
        return "not a valid database URL"
    try:
        with psycopg.connect(conninfo, connect_timeout=max(1, round(timeout_s))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        # first line says what failed ("... port 5432 failed: Connection refused"); the rest
        # are hints. libpq never echoes the password.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return " ".join(first.removeprefix("connection failed: ").split())
    return None


def with_database(admin_url: str, name: str) -> str:
    """``admin_url`` pointing at database ``name`` instead."""
    from sqlalchemy.engine import make_url

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` (dropping any leftover of that name); return its URL."""
    drop_database(admin_url, name)
    _admin_execute(admin_url, "CREATE DATABASE {}", name)
    log.info("database created name=%s", name)
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting its clients (PostgreSQL >= 13)."""
    _admin_execute(admin_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


def _admin_execute(admin_url: str, template: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    stmt = sql.SQL(template).format(sql.Identifier(name))
    with psycopg.connect(_libpq_url(admin_url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(stmt)
