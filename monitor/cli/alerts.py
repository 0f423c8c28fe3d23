"""``vitmon alerts`` and ``vitmon rules export`` (registered by ``monitor/cli.py``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from monitor.config import Settings

STATES = ["pending", "firing", "suppressed", "resolved"]


def cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.alerts.store import list_alerts
    from monitor.cli import _engine

    rows = list_alerts(_engine(settings), args.state, args.limit, history=args.history)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    for r in rows:
        lab = r["labels"]
        print(f"{r['state']:<10} {r['severity']:<6} {r['alertname']:<22} {lab['model']} "
              f"{lab['model_version']} {lab['slice']:<24} {lab.get('subject', ''):<20} "
              f"since={r['annotations'].get('since', '')} delivery={r['delivery']['status']}")
    return 0


def cmd_rules_export(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.slo.promrules import export

    if not settings.slos:
        print("vitmon: no SLOs configured (slos: in the config file)", file=sys.stderr)
        return 1
    text = export(settings)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def register(sub: Any, add: Any) -> None:
    p = add("alerts", "alerts with labels, state, startsAt, endsAt and delivery status",
            cmd_alerts)
    p.add_argument("--json", action="store_true")
    p.add_argument("--state", choices=STATES)
    p.add_argument("--history", action="store_true", help="include every state transition")
    p.add_argument("--limit", type=int, default=1000)

    rules = sub.add_parser("rules", help="Prometheus rules").add_subparsers(
        dest="rules_command", required=True)
    p = add("export", "Prometheus recording and alerting rules for the configured SLOs",
            cmd_rules_export, rules)
    p.add_argument("--out", type=Path, help="write to this file (default: stdout)")
