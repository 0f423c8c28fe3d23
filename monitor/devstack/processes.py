"""The one child-process helper of the dev stack: the embedded broker, the embedded PostgreSQL
and every child of ``vitmon demo`` start, stop and report through it.

A child leads its own process group, so a terminal's Ctrl-C reaches only its parent, which then
stops children in order; its output goes to a log file; and when started from the main thread
it is told by the kernel to terminate if its parent dies without running ``atexit`` (SIGKILL),
through ``PR_SET_PDEATHSIG``. Stopping signals the whole group, then SIGKILLs what is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
_Service = TypeVar("_Service", bound="ChildService")


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port nobody listens on right now (the OS picks it; a race is possible but rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
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


def spawn(argv: Sequence[str], log_path: Path, parent_death_signal: signal.Signals,
          **popen: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the leader of a new process group, output appended to ``log_path``,
    signalled with ``parent_death_signal`` if this process dies (see :func:`die_with_parent`).
    ``popen``: further ``subprocess.Popen`` arguments (``env``, ``cwd``, ``user``...)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        return subprocess.Popen(  # noqa: S603 - argv built by vitmon, no shell
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent(parent_death_signal), **popen)


def stop_group(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
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


def tail_of(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' if unreadable)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ChildService:
    """A service run as one child process (``_proc``, started with :func:`spawn`): its pid,
    whether it runs, and ``with service:`` to start and stop it."""

    _proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Process id of the running service (None when stopped)."""
        return self._proc.pid if self.is_running() and self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self: _Service) -> _Service:
        """Start the service unless it runs; return once it is ready."""
        if not self.is_running():
            self._launch()
        return self

    def _launch(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Service) -> _Service:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: signal.Signals


class Supervisor:
    """The children of ``vitmon demo``: started with their output in ``log_dir/<name>.log``,
    watched, and stopped newest first so that nothing is left running."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
              stop_signal: signal.Signals = signal.SIGTERM) -> Child:
        log_path = self.log_dir / f"{name}.log"
        proc = spawn(argv, log_path, signal.SIGTERM,
                     env=dict(env) if env is not None else None)
        child = Child(name, proc, log_path, stop_signal)
        self.children.append(child)
        log.info("started name=%s pid=%d log=%s", name, proc.pid, log_path)
        return child

    def exited(self) -> list[Child]:
        """Children that have exited (each reported once: it is removed from the watch list)."""
        done = [c for c in self.children if c.proc.poll() is not None]
        self.children = [c for c in self.children if c not in done]
        return done

    def stop_all(self, timeout_s: float = 15.0) -> None:
        """Stop children newest first: the graceful signal, then SIGKILL of the whole group."""
        for child in reversed(self.children):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, child.stop_signal)
        deadline = time.monotonic() + timeout_s
        for child in reversed(self.children):
            try:
                child.proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("did not stop in time, killing name=%s pid=%d", child.name,
                            child.proc.pid)
            stop_group(child.proc, 0.1)  # SIGKILLs the group if anything of it survived
            log.info("stopped name=%s pid=%d rc=%s", child.name, child.proc.pid,
                     child.proc.returncode)
        self.children.clear()


def tail(child: Child, lines: int = 15) -> str:
    return tail_of(child.log_path, lines)


def wait_http(url: str, timeout_s: float, child: Child | None = None) -> bool:
    """Poll ``url`` until it answers 200 (False on timeout or if ``child`` exits first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and child.proc.poll() is not None:
            return False
        with contextlib.suppress(urllib.error.URLError, OSError):
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - local URL
                if resp.status == 200:
                    return True
        time.sleep(0.3)
    return False
