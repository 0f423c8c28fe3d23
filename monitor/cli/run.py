"""``vitmon run``: the production consumer."""

from __future__ import annotations

import argparse

from monitor.app.config import Settings
from monitor.cli.common import Subparsers, command


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.app import service

    service.run(settings, exit_when_idle_s=args.exit_when_idle)
    return 0


def register(sub: Subparsers) -> None:
    p = command(sub, "run", "the production consumer: Kafka -> detectors -> PostgreSQL", cmd_run)
    p.add_argument("--exit-when-idle", type=float, metavar="S",
                   help="evaluate every open window and exit after S seconds without new records "
                        "(backfills, tests)")
