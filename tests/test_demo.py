"""``vitmon demo`` from a clean state: it prints its URLs, serves the UI and the metrics, an
alert fires for a scripted incident (and reaches the real Alertmanager when installed), and
Ctrl-C leaves nothing running.

Three hours of the ``mixed`` scenario at 120x (90 s): cam-03's firmware breaks 13.5 s in,
us-east latency spikes at 49.5 s, a bad canary serves from 63 s. The pace only decides how soon
the first alert fires (nothing here depends on it); on a busy machine the simulator falls a few
seconds behind it, which the alert waits tolerate.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.devstack.processes import free_port
from tests.support import VITMON, query

# What the mixed scenario breaks (simulator/scenarios.py): the camera, the region, the canary.
INCIDENT_SLICES = ("camera_id=cam-03", "region=us-east")
CANARY = "2026.11.2"


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (children, grandchildren, ...), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read().decode(errors="replace")


class Output:
    """The demo's stdout, collected by a thread (so the pipe never fills)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r}:\n" + "\n".join(self.lines))


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITMON_")}
    proc = subprocess.Popen(
        [VITMON, "demo", "--duration", "10800", "--speedup", "120", "--ui-port", str(free_port()),
         "--workdir", str(tmp_path / "demo")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, Output(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def test_demo_end_to_end(demo: tuple[subprocess.Popen[str], Output]) -> None:
    proc, out = demo
    ui = out.wait_for(r"^  UI +(http://\S+)/$", 240).group(1)
    metrics = out.wait_for(r"^  metrics +(http://\S+)$", 5).group(1)
    db_url = out.wait_for(r"^  PostgreSQL +(\S+)", 5).group(1)
    am = out.wait_for(r"^  Alertmanager +(\S+)", 5).group(1)

    status, body = get(f"{ui}/?page=oncall")
    assert status == 200 and "<html" in body.lower()
    assert get(f"{ui}/_stcore/health")[0] == 200
    status, body = get(metrics)
    assert status == 200 and "vitmon_events_total" in body

    deadline = time.monotonic() + 300
    fired: list = []
    while not fired and time.monotonic() < deadline:
        fired = query(db_url, "SELECT rule, severity FROM alerts WHERE fired_at IS NOT NULL "
                      "AND (labels->>'slice' = ANY(:s) OR labels->>'model_version' = :v)",
                      s=list(INCIDENT_SLICES), v=CANARY)
        time.sleep(0.5)
    assert fired, "no alert fired for a scripted incident:\n" + "\n".join(out.lines)
    if shutil.which("prometheus-alertmanager"):
        assert am.startswith("http://"), am
        received: list = []
        while not received and time.monotonic() < deadline:
            received = [a for a in json.loads(get(f"{am}api/v2/alerts")[1])
                        if a["labels"].get("model") == "vit-tiny-digits"]
            time.sleep(0.5)
        assert received, "the demo's Alertmanager received no alert"

    running = descendants(proc.pid)
    assert len(running) >= 6  # broker, postgres, UI, simulator or monitor, ...
    proc.send_signal(signal.SIGINT)
    assert proc.wait(90) == 0
    out.wait_for(r"stopped; nothing is left running", 5)
    deadline = time.monotonic() + 10  # reparented postgres backends exit after the postmaster
    while any(alive(p) for p in running) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in running if alive(p)]
