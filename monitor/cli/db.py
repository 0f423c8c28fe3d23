"""``vitmon db upgrade`` and ``vitmon db prune``: the schema and retention."""

from __future__ import annotations

import argparse
import json

from monitor.app.config import Settings
from monitor.cli.common import Subparsers, command, engine, group, time_arg


def cmd_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.store import migrate
    from monitor.store.db import check_reachable, mask_url

    url = settings.required_database_url()
    check_reachable(url)
    migrate.upgrade(url, args.revision)
    print(f"database {mask_url(url)} at {', '.join(migrate.current_heads(url))}")
    return 0


def cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.core.retention import prune

    r = prune(engine(settings), settings.retention, settings.windows.allowed_lateness_s * 1000,
              before_ms=args.before, labels_topic=settings.kafka.labels_topic)
    print(json.dumps({"cutoff_ms": r.cutoff_ms, "dropped": r.dropped, "deleted": r.deleted,
                      "batches": r.batches, "watermark_ahead_ms": r.watermark_ahead_ms}))
    return 0


def register(sub: Subparsers) -> Subparsers:
    db = group(sub, "db", "database schema")
    p = command(db, "upgrade", "Alembic migrations to head", cmd_upgrade)
    p.add_argument("revision", nargs="?", default="head")
    return db


def register_prune(db: Subparsers) -> None:
    p = command(db, "prune", "apply retention: drop prediction partitions past the label horizon, "
                "delete old window states, findings and rejected events in batches", cmd_prune)
    p.add_argument("--before", type=time_arg, metavar="T",
                   help="cutoff (default: the consumers' watermark, at most the clock, - "
                   "retention.label_horizon_s)")
