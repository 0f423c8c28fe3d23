"""Embedded broker and PostgreSQL: restartable on the same port, no processes left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from monitor.devstack.broker import EmbeddedBroker, kafka_metadata_ok
from monitor.devstack.postgres import EmbeddedPostgres, resolve_database
from monitor.devstack.processes import free_port
from monitor.errors import ConfigError
from monitor.store.db import check_database, create_database, drop_database

pytestmark = pytest.mark.integration


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def gone(pid: int, timeout_s: float = 10) -> bool:
    """True once ``pid`` no longer exists (a zombie counts as gone: it holds nothing)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def test_postgres_stop_start_keeps_port_and_data(tmp_path: Path):
    pg = EmbeddedPostgres(tmp_path / "pgdata")
    try:
        pg.start()
        url, port = pg.url, pg.port
        assert url == f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(libpq(url), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        pg.stop()
        assert not pg.is_running()
        assert check_database(url, timeout_s=1) is not None  # really down
        pg.start()
        assert (pg.port, pg.url) == (port, url)
        with psycopg.connect(libpq(url)) as conn:
            assert conn.execute("SELECT n FROM kept").fetchall() == [(42,)]
    finally:
        pg.stop()
    assert not pg.is_running()


def test_unreachable_explicit_url_is_a_config_error_with_password_masked(tmp_path: Path):
    url = f"postgresql+psycopg://vitmon:s3cret-pw@127.0.0.1:{free_port()}/vitmon"
    with pytest.raises(ConfigError) as info:
        resolve_database(url, tmp_path / "pgdata", timeout_s=1)
    message = str(info.value)
    assert info.value.setting == "VITMON_DATABASE_URL"
    assert message.startswith("VITMON_DATABASE_URL: ")
    assert "s3cret-pw" not in message and "***" in message
    assert "\n" not in message
    assert not (tmp_path / "pgdata").exists()  # no silent fallback to an embedded server


def test_reachable_url_is_used_as_is(pg_admin_url: str, tmp_path: Path):
    assert resolve_database(pg_admin_url, tmp_path / "pgdata") == (pg_admin_url, None)


def test_no_url_starts_an_embedded_server(tmp_path: Path):
    url, server = resolve_database(None, tmp_path / "pgdata")
    try:
        assert server is not None and server.url == url
        assert check_database(url) is None
    finally:
        if server is not None:
            server.stop()


def test_create_and_drop_database(pg_admin_url: str):
    name = f"vitmon_embedded_{os.getpid()}"
    url = create_database(pg_admin_url, name)
    try:
        assert url.endswith(f"/{name}")
        with psycopg.connect(libpq(url)) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (name,)
    finally:
        drop_database(pg_admin_url, name)
    assert check_database(url, timeout_s=2) is not None
    drop_database(pg_admin_url, name)  # dropping a missing database is fine


def test_broker_stop_leaves_no_process(tmp_path: Path):
    broker = EmbeddedBroker(log_dir=tmp_path).start()
    pid, port = broker.pid, broker.port
    assert pid is not None and kafka_metadata_ok("127.0.0.1", port)
    assert (tmp_path / f"tansu-{port}.log").exists()
    broker.stop()
    assert gone(pid, timeout_s=0)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing left in its process group either
    assert not kafka_metadata_ok("127.0.0.1", port)
    broker.stop()  # idempotent


def test_services_die_with_a_sigkilled_parent(tmp_path: Path):
    """atexit cannot run after SIGKILL; the parent-death signal stops both services anyway."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from monitor.devstack.broker import EmbeddedBroker
        from monitor.devstack.postgres import EmbeddedPostgres
        broker = EmbeddedBroker(log_dir=Path({str(tmp_path)!r})).start()
        pg = EmbeddedPostgres(Path({str(tmp_path / "pgdata")!r})).start()
        print(broker.pid, pg.pid, flush=True)
        time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline() if parent.stdout else ""
        broker_pid, pg_pid = (int(x) for x in line.split())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    assert gone(broker_pid), "broker outlived its SIGKILLed parent"
    assert gone(pg_pid), "postgres outlived its SIGKILLed parent"
