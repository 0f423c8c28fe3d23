"""``vitmon alerts`` and ``vitmon rules export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitor.app.config import Settings
from monitor.cli.common import Subparsers, command, engine, group, print_json

STATES = ["pending", "firing", "suppressed", "explained", "resolved"]


def cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.store.alerts import list_alerts

    if args.incidents:
        return _incidents(args, settings)
    rows = list_alerts(engine(settings), args.state, args.limit, history=args.history)
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        lab = r["labels"]
        print(f"{r['state']:<10} {r['severity']:<6} {r['alertname']:<22} {lab['model']} "
              f"{lab['model_version']} {lab['slice']:<24} {lab.get('subject', ''):<20} "
              f"since={r['annotations'].get('since', '')} delivery={r['delivery']['status']}"
              + (f" explained_by={r['explained_by']}" if r["explained_by"] else "")
              + (f" incident={r['incident_id']}" if r["incident_id"] else ""))
    return 0


def _incidents(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.store.incidents import list_incidents

    state = {"pending": "open", "firing": "open", "resolved": "resolved"}.get(args.state or "")
    rows = list_incidents(engine(settings), state, args.limit)
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        explained = sorted({e["slice"] for e in r["explained"]})
        print(f"#{r['id']:<5} {r['state']:<8} {r['severity']:<6} {r['model']} "
              f"{r['model_version']} {r['slice']:<24} detectors={','.join(r['detectors'])} "
              f"explains={','.join(explained) or '-'} alerts={len(r['alerts'])}")
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
    p.add_argument("--incidents", action="store_true",
                   help="incidents (alerts of one cause) instead of alerts")

    rules = group(sub, "rules", "Prometheus rules")
    p = command(rules, "export", "Prometheus recording and alerting rules for the configured SLOs",
                cmd_rules_export)
    p.add_argument("--out", type=Path, help="write to this file (default: stdout)")
