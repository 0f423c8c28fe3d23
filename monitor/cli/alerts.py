"""``vitmon alerts`` and ``vitmon rules export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitor.app.config import Settings
from monitor.cli.common import Subparsers, command, engine, group, print_json

STATES = ["pending", "firing", "suppressed", "resolved"]


def cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.store.alerts import list_alerts

    rows = list_alerts(engine(settings), args.state, args.limit, history=args.history)
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        lab = r["labels"]
        print(f"{r['state']:<10} {r['severity']:<6} {r['alertname']:<22} {lab['model']} "
              f"{lab['model_version']} {lab['slice']:<24} {lab.get('subject', ''):<20} "
              f"since={r['annotations'].get('since', '')} delivery={r['delivery']['status']}")
    return 0


def cmd_rules_export(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.alerting.slo.promrules import export

    if not settings.slos:
        print("vitmon: no SLOs configured (slos: in the config file)", file=sys.stderr)
        return 1
    text = export(settings.slos, settings.burn_rate, settings.ui.base_url,
                  settings.alerts.runbook_base_url)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def register(sub: Subparsers) -> None:
    p = command(sub, "alerts", "alerts with labels, state, startsAt, endsAt and delivery status",
                cmd_alerts)
    p.add_argument("--json", action="store_true")
    p.add_argument("--state", choices=STATES)
    p.add_argument("--history", action="store_true", help="include every state transition")
    p.add_argument("--limit", type=int, default=1000)

    rules = group(sub, "rules", "Prometheus rules")
    p = command(rules, "export", "Prometheus recording and alerting rules for the configured SLOs",
                cmd_rules_export)
    p.add_argument("--out", type=Path, help="write to this file (default: stdout)")
