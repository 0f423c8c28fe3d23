"""A real Alertmanager (Debian's ``prometheus-alertmanager``) for tests: started on a free port
with its own storage and no clustering, read back through its own ``GET /api/v2/alerts``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or \
    "/usr/bin/prometheus-alertmanager"
CONFIG = "route:\n  receiver: default\n  group_by: [incident, model]\nreceivers:\n  - name: default\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Alertmanager:
    """``start()``/``stop()`` can be repeated: the port and storage stay, like a restart."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "alertmanager.yml"
        self.config.write_text(CONFIG)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60) -> None:
        log = (self.workdir / "alertmanager.log").open("ab")
        self.proc = subprocess.Popen(
            [BINARY, f"--config.file={self.config}", f"--storage.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                tail = (self.workdir / "alertmanager.log").read_text()[-2000:]
                raise RuntimeError(f"alertmanager exited: {tail}")
            time.sleep(0.2)
        raise RuntimeError("alertmanager did not become ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.proc = None

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """Active alerts as Alertmanager reports them (resolved ones are not listed)."""
        resp = requests.get(f"{self.url}/api/v2/alerts", params=filters, timeout=5)
        resp.raise_for_status()
        return resp.json()
