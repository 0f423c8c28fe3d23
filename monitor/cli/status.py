"""``vitmon detectors list``, ``vitmon status`` and ``vitmon findings``: what is installed and
what the monitor stored."""

from __future__ import annotations

import argparse

from monitor.app.config import Settings
from monitor.cli.common import Subparsers, command, engine, group, print_json, time_arg

STATUSES = ["ok", "warn", "alert", "insufficient_data", "no_reference"]


def cmd_detectors_list(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.core.registry import discover

    enabled = settings.detectors.enabled
    rows = [{"name": name, "version": info.version, "target": info.target,
             "package": info.distribution, "enabled": enabled is None or name in enabled,
             "summary": info.summary} for name, (info, _) in discover().items()]
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            mark = "*" if r["enabled"] else " "
            print(f"{mark} {r['name']:<22} v{r['version']:<3} {r['package']:<16} {r['summary']}")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.reports.status import status

    data = status(engine(settings), settings.kafka.group)
    if args.json:
        print_json(data)
        return 0
    for m in data["models"]:
        print(f"{m['model']} {m['model_version']}: accepted={m['accepted']} "
              f"rejected={m['rejected_total']} labels_joined={m['labels_joined']}")
    for p in data["partitions"]:
        print(f"{p['topic']}[{p['partition']}] committed={p['committed_offset']} lag={p['lag']} "
              f"owner={p['owner'] or '-'}")
    return 0


def cmd_findings(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.store.findings import list_findings

    rows = list_findings(engine(settings), args.since, args.detector, args.status, args.limit)
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            print(f"{r['window_start_ms']} {r['detector']:<18} {r['model']} {r['model_version']} "
                  f"{r['slice']:<28} {r['status']:<17} score={r['score']} p={r['p_value']}")
    return 0


def register(sub: Subparsers) -> None:
    det = group(sub, "detectors", "detector plugins")
    p = command(det, "list", "the detector plugins found (built-in and installed)",
                cmd_detectors_list)
    p.add_argument("--json", action="store_true")

    p = command(sub, "status", "per model version: accepted, rejected by reason, labels joined; "
                "per partition: committed offset and lag", cmd_status)
    p.add_argument("--json", action="store_true")

    p = command(sub, "findings", "detector findings, newest windows first", cmd_findings)
    p.add_argument("--json", action="store_true")
    p.add_argument("--since", type=time_arg, help="window start at or after T")
    p.add_argument("--detector")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--limit", type=int, default=1000)
