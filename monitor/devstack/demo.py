"""``vitmon demo``: the whole product on one machine, from nothing, in one command.

Procedure (each step logs one line; every URL is printed once everything answers):

1. Kafka: the embedded Tansu broker, unless ``VITMON_KAFKA_BOOTSTRAP`` is set.
2. PostgreSQL: ``VITMON_DATABASE_URL`` if set (it must be reachable; the demo then writes into it
   under its own consumer group), else the embedded server on ``database.data_dir`` with a fresh
   ``vitmon_demo`` database; migrate.
3. Alertmanager, when Debian's ``prometheus-alertmanager`` is installed; the UI (``vitmon ui``).
4. The simulator on the scenario (default ``mixed``) with time compression (default 30x), and
   the monitor (``vitmon run``) with the metrics endpoint; the URLs are printed once they answer.
5. Once the scenario's first, healthy stretch has been published: a reference profile of the
   baseline version from it (``monitor.reports.reference_capture``). The monitor picks it up within a
   minute (its reference cache), well before the first incident; until then drift detectors
   report ``no_reference``, never ``ok``.

Ctrl-C (SIGINT) or SIGTERM stops the children newest first, then the broker and PostgreSQL.
Settings: ``--config`` if given, else ``monitor/defaults/demo.yaml``; ``VITMON_*`` still win.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from monitor.app.config import Settings, load_settings
from monitor.devstack.broker import EmbeddedBroker
from monitor.devstack.postgres import EmbeddedPostgres, resolve_database
from monitor.devstack.processes import LOCALHOST, Supervisor, free_port, tail, wait_http
from monitor.store import migrate
from monitor.store.db import create_database, make_engine, mask_url

log = logging.getLogger("vitmon.demo")

DEMO_SETTINGS = Path(__file__).resolve().parents[1] / "defaults" / "demo.yaml"
DEMO_DATABASE = "vitmon_demo"
MODEL, BASELINE = "vit-tiny-digits", "2026.11.1"  # the simulator's model (simulator/traffic.py)
ALERTMANAGER_BIN = "prometheus-alertmanager"
ALERTMANAGER_CONFIG = """\
# vitmon demo: keep every alert visible in Alertmanager's UI; notify nobody.
route: {receiver: demo, group_by: [alertname, model], group_wait: 5s, group_interval: 30s,
        repeat_interval: 1h}
receivers: [{name: demo}]
"""


@dataclass(frozen=True)
class DemoOptions:
    speedup: float = 30.0
    duration_s: float = 6 * 3600.0
    scenario: str = "mixed"
    ui_port: int | None = None
    workdir: Path = Path(".vitmon/demo")
    config: Path | None = None


class _Stop(Exception):
    """Raised by the signal handler: unwinds to the clean-up."""


@dataclass
class _Running:
    """What the demo started in-process, recorded as soon as it runs (for the clean-up)."""

    services: Supervisor
    broker: EmbeddedBroker | None = None
    server: EmbeddedPostgres | None = None


def _port(preferred: int) -> int:
    """``preferred`` when nothing listens on it, else a free port."""
    return preferred if preferred and _free(preferred) else free_port()


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex((LOCALHOST, port)) != 0


def reference_span(scenario: str, duration_s: float) -> float:
    """Event-time seconds from the start that are healthy enough for a reference: 80 % of the
    time before the first incident (bad input is rejected, so it does not count), at most 25 %.

    >>> reference_span("mixed", 21600.0), reference_span("steady", 7200.0)
    (2592.0, 1800.0)
    """
    from simulator.incidents import BadInput
    from simulator.scenarios import SCENARIOS

    starts = [i.start for i in SCENARIOS[scenario].incidents if not isinstance(i, BadInput)]
    return round(duration_s * min(0.8 * min(starts, default=1.0), 0.25), 3)


def run(opts: DemoOptions) -> int:
    """Run the demo until Ctrl-C / SIGTERM; returns the exit code (1 if a service failed)."""
    def on_signal(signum: int, _frame: object) -> None:
        raise _Stop(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if logging.getLogger().level > logging.DEBUG:  # the demo speaks in its own lines (_say)
        logging.getLogger("monitor").setLevel(logging.WARNING)
    running = _Running(Supervisor(opts.workdir / "logs"))
    try:
        return _run(opts, running)
    except _Stop:
        _say("stopping: Ctrl-C / SIGTERM received")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        running.services.stop_all()
        for service in (running.broker, running.server):
            if service is not None:
                service.stop()
        _say("stopped; nothing is left running")


def _run(opts: DemoOptions, running: _Running) -> int:
    services = running.services
    config = opts.config or DEMO_SETTINGS
    settings = load_settings(config)
    workdir = opts.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    bootstrap = os.environ.get("VITMON_KAFKA_BOOTSTRAP")
    if not bootstrap:
        running.broker = EmbeddedBroker(log_dir=workdir / "logs")
        bootstrap = running.broker.start().bootstrap
    broker = running.broker
    _say(f"kafka {bootstrap} ({'embedded Tansu' if broker else 'VITMON_KAFKA_BOOTSTRAP'})")
    url, server = resolve_database(settings.database_url(), settings.database.data_dir)
    running.server = server
    env = {k: v for k, v in os.environ.items() if k != "VITMON_CONFIG"}
    if server is not None:
        url = create_database(url, DEMO_DATABASE)  # fresh: the broker starts empty too
    else:  # the user's database: keep its data, read the new topics under a new group
        env["VITMON_KAFKA__GROUP"] = f"demo-{int(time.time())}"
    migrate.upgrade(url)
    _say(f"postgresql {mask_url(url)} ({'embedded' if server else 'VITMON_DATABASE_URL'}), "
         "migrated")
    ui_port = opts.ui_port or _port(settings.ui.port)
    metrics_port = _port(settings.metrics.port or 9108)
    ui_url = f"http://127.0.0.1:{ui_port}"
    samples = (workdir / "samples").resolve()
    env.update({"VITMON_CONFIG": str(Path(config).resolve()), "VITMON_KAFKA_BOOTSTRAP": bootstrap,
                "VITMON_DATABASE_URL": url, "VITMON_METRICS_PORT": str(metrics_port),
                "VITMON_UI_URL": ui_url, "VITMON_UI__PORT": str(ui_port),
                # the simulator's frames, shown as thumbnails (the UI reads only this directory)
                "VITMON_UI__SAMPLES__ALLOW": json.dumps([samples.as_uri() + "/"]),
                "PYTHONUNBUFFERED": "1"})
    am_url = _alertmanager(services, workdir)
    if am_url:
        env["VITMON_ALERTMANAGER_URL"] = am_url
    vitmon = str(Path(sys.executable).with_name("vitmon"))
    ui = services.start("ui", [vitmon, "ui", "--host", "127.0.0.1", "--port", str(ui_port)], env)
    start_ms = int(time.time() // 60 * 60_000)
    services.start("simulator", [
        vitmon, "simulate", "--scenario", opts.scenario, "--duration", str(opts.duration_s),
        "--speedup", str(opts.speedup), "--start", str(start_ms), "--bootstrap", bootstrap,
        "--no-progress", "--manifest", str(workdir / "manifest.json"),
        "--sample-store", str(samples)], env, signal.SIGINT)
    sim_started = time.monotonic()
    monitor = services.start("monitor", [vitmon, "run"], env)
    for child, health in ((ui, f"{ui_url}/_stcore/health"),
                          (monitor, f"http://127.0.0.1:{metrics_port}/metrics")):
        if not wait_http(health, 120, child):
            _say(f"{child.name} did not start; {child.log_path}:\n{tail(child)}")
            return 1
    _banner(ui_url, metrics_port, am_url, bootstrap, broker, url, server, workdir, opts)
    _capture_reference(load_settings(config, env=env), opts, start_ms, sim_started)
    return _watch(services)


def _alertmanager(services: Supervisor, workdir: Path) -> str | None:
    binary = shutil.which(ALERTMANAGER_BIN)
    if binary is None:
        _say(f"alertmanager: `{ALERTMANAGER_BIN}` not installed; alerts stay in PostgreSQL and the UI")
        return None
    port = _port(9093)
    cfg = workdir / "alertmanager.yml"
    cfg.write_text(ALERTMANAGER_CONFIG)
    am = services.start("alertmanager", [
        binary, f"--config.file={cfg}", f"--storage.path={workdir / 'alertmanager'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="])
    url = f"http://127.0.0.1:{port}"
    if not wait_http(f"{url}/-/ready", 30, am):
        _say(f"alertmanager did not start ({am.log_path}); continuing without it")
        return None
    return url


def _capture_reference(settings: Settings, opts: DemoOptions, start_ms: int,
                       sim_started: float) -> None:
    """Store a reference of the baseline from the scenario's healthy first stretch."""
    try:
        from monitor.reports.reference_capture import capture
        from monitor.store import references
    except ImportError:
        _say("reference capture is not available in this build; drift detectors will report "
             "`no reference`")
        return
    span_s = reference_span(opts.scenario, opts.duration_s)
    wait_s = span_s / opts.speedup + 2 - (time.monotonic() - sim_started)
    _say(f"capturing a reference of {MODEL} {BASELINE} from the first {span_s / 60:.0f} min of "
         f"event time (in {max(wait_s, 0):.0f} s)")
    time.sleep(max(wait_s, 0))
    try:
        captured = capture(settings, MODEL, BASELINE, from_ms=start_ms,
                           to_ms=start_ms + int(span_s * 1000))
    except ValueError as exc:  # no events of the baseline in the span (e.g. a custom scenario)
        _say(f"no reference captured ({exc}); drift detectors will report `no reference`")
        return
    engine = make_engine(settings.database_url() or "")
    try:
        with engine.begin() as conn:
            ref_id = references.store(conn, MODEL, BASELINE, captured.profile, captured.source,
                                      captured.n_events, {"n_events": captured.n_events,
                                                          "n_labelled": captured.n_labelled})
    finally:
        engine.dispose()
    _say(f"reference {ref_id} stored: {captured.n_events} events, {captured.n_labelled} labelled")


def _banner(ui_url: str, metrics_port: int, am_url: str | None, bootstrap: str,
            broker: object, url: str, server: object, workdir: Path, opts: DemoOptions) -> None:
    am = f"{am_url}/" if am_url else "not installed (apt-get install prometheus-alertmanager)"
    lines = [
        "", "vitmon demo is running. Ctrl-C stops everything.",
        f"  UI            {ui_url}/",
        f"  on-call view  {ui_url}/?page=oncall",
        f"  drift view    {ui_url}/?page=drift&slice=camera_id%3Dcam-03&detector=feature_drift",
        f"  metrics       http://127.0.0.1:{metrics_port}/metrics",
        f"  Alertmanager  {am}",
        f"  Kafka         {bootstrap}{' (embedded)' if broker else ''}",
        f"  PostgreSQL    {mask_url(url)}{' (embedded)' if server else ''}",
        f"  logs          {workdir / 'logs'}/",
        f"Simulating {opts.scenario}: {opts.duration_s / 3600:g} h of event time at "
        f"{opts.speedup:g}x ({opts.duration_s / opts.speedup / 60:.0f} min)."
        + (" Incidents: cam-03 firmware, a us-east latency spike, a bad canary."
           if opts.scenario == "mixed" else ""), ""]
    print("\n".join(lines), flush=True)


def _watch(services: Supervisor) -> int:
    """Until a signal: report children that exit; a crashed monitor or UI ends the demo."""
    while True:
        for child in services.exited():
            if child.name == "simulator" and child.proc.returncode == 0:
                _say("scenario complete; the monitor and UI keep running. Ctrl-C to stop.")
                continue
            _say(f"{child.name} exited with code {child.proc.returncode}; "
                 f"{child.log_path}:\n{tail(child)}")
            if child.name in ("monitor", "ui"):
                return 1
        time.sleep(0.5)


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)
