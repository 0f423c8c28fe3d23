"""``vitmon demo``: the one-command demo."""

from __future__ import annotations

import argparse
from pathlib import Path

from monitor.app.config import Settings
from monitor.cli.common import Subparsers, command


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.devstack import demo

    return demo.run(demo.DemoOptions(
        speedup=args.speedup, duration_s=args.duration, ui_port=args.ui_port,
        scenario=args.scenario, workdir=args.workdir,
        config=Path(args.config) if args.config else None))


def register(sub: Subparsers) -> None:
    from simulator.scenarios import SCENARIOS

    p = command(sub, "demo", "the main job on embedded defaults: broker, PostgreSQL, monitor, "
                "simulator with scripted incidents, metrics, UI (and Alertmanager when "
                "installed); Ctrl-C stops everything", cmd_demo)
    p.add_argument("--speedup", type=float, default=30.0,
                   help="event time runs this many times faster than the wall clock "
                        "(default 30: an hour of traffic every 2 minutes)")
    p.add_argument("--duration", type=float, default=6 * 3600.0, metavar="S",
                   help="event-time seconds of the scenario (default 6 h)")
    p.add_argument("--scenario", default="mixed", choices=sorted(SCENARIOS),
                   help="simulator scenario (default mixed: the union of the incidents)")
    p.add_argument("--ui-port", type=int, default=None,
                   help="port of the UI (default ui.port if free, else any free port)")
    p.add_argument("--workdir", type=Path, default=Path(".vitmon/demo"),
                   help="logs, manifest and settings of the run (default .vitmon/demo)")
