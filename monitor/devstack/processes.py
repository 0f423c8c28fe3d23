"""Child processes of ``vitmon demo``: started with their output in log files, watched, and
stopped so that nothing is left running.

Each child leads its own process group (so the terminal's Ctrl-C reaches only the demo, which
then stops the children in order) and is told by the kernel to terminate if the demo itself is
killed (``PR_SET_PDEATHSIG``, see :mod:`monitor.embedded`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.embedded import _die_with_parent, _stop_group, _tail

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: signal.Signals


class Supervisor:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
              stop_signal: signal.Signals = signal.SIGTERM) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - argv built by the demo, no shell
                list(argv), env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent(signal.SIGTERM))
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
            _stop_group(child.proc, 0.1)  # SIGKILLs the group if anything of it survived
            log.info("stopped name=%s pid=%d rc=%s", child.name, child.proc.pid,
                     child.proc.returncode)
        self.children.clear()


def tail(child: Child, lines: int = 15) -> str:
    return _tail(child.log_path, lines)


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
