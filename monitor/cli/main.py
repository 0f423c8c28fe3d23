"""``vitmon``: the command line. Each subcommand is a small function; errors are one line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from monitor import logs
from monitor.config import Settings, load_settings
from monitor.errors import ConfigError, VitmonError

Handler = Callable[[argparse.Namespace, Settings], int]

EPILOG = """\
settings come from --config (YAML) and VITMON_* environment variables (env wins), e.g.
  VITMON_KAFKA_BOOTSTRAP=127.0.0.1:9092 VITMON_DATABASE_URL=postgresql://vitmon@db/vitmon vitmon run
"""


def _json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _engine(settings: Settings):
    from monitor.app import database_url
    from monitor.db import check_reachable, make_engine

    url = database_url(settings)
    check_reachable(url)
    return make_engine(url)


def parse_time(value: str) -> int:
    """Epoch milliseconds from an RFC 3339 time, a date, or epoch milliseconds."""
    if value.isdigit():
        return int(value)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {value!r} (use RFC 3339 or epoch ms)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


# -- commands --------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from monitor import app

    app.run(settings, exit_when_idle_s=args.exit_when_idle)
    return 0


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from monitor import migrate
    from monitor.app import database_url
    from monitor.db import check_reachable, mask_url

    url = database_url(settings)
    check_reachable(url)
    migrate.upgrade(url, args.revision)
    print(f"database {mask_url(url)} at {', '.join(migrate.current_heads(url))}")
    return 0


def cmd_detectors_list(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.registry import discover

    found = discover()
    enabled = settings.detectors.enabled
    rows = [{"name": name, "version": info.version, "target": info.target,
             "package": info.distribution, "enabled": enabled is None or name in enabled,
             "summary": info.summary} for name, (info, _) in found.items()]
    if args.json:
        _json(rows)
    else:
        for r in rows:
            mark = "*" if r["enabled"] else " "
            print(f"{mark} {r['name']:<22} v{r['version']:<3} {r['package']:<16} {r['summary']}")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.status import status

    data = status(_engine(settings), settings.kafka.group)
    if args.json:
        _json(data)
        return 0
    for m in data["models"]:
        print(f"{m['model']} {m['model_version']}: accepted={m['accepted']} "
              f"rejected={m['rejected_total']} labels_joined={m['labels_joined']}")
    for p in data["partitions"]:
        print(f"{p['topic']}[{p['partition']}] committed={p['committed_offset']} lag={p['lag']}")
    return 0


def cmd_findings(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.status import findings

    rows = findings(_engine(settings), args.since, args.detector, args.status, args.limit)
    if args.json:
        _json(rows)
    else:
        for r in rows:
            print(f"{r['window_start_ms']} {r['detector']:<18} {r['model']} {r['model_version']} "
                  f"{r['slice']:<28} {r['status']:<17} score={r['score']} p={r['p_value']}")
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from simulator import cli as sim_cli

    if getattr(args, "bootstrap", None) is None:  # the YAML setting, when env gave none
        args.bootstrap = settings.kafka.bootstrap
    return sim_cli.run(args)


def cmd_simulate_train(args: argparse.Namespace, settings: Settings) -> int:
    from simulator import cli as sim_cli

    return sim_cli.run_train(args)


# -- parser ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vitmon", description="Production monitoring and drift detection for ViT models.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML settings file (default: $VITMON_CONFIG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_: str, handler: Handler, parent=sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_, description=help_,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(handler=handler)
        return p

    p = add("run", "the production consumer: Kafka -> detectors -> PostgreSQL", cmd_run)
    p.add_argument("--exit-when-idle", type=float, metavar="S",
                   help="evaluate every open window and exit after S seconds without new records "
                        "(backfills, tests)")

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command",
                                                                     required=True)
    p = add("upgrade", "Alembic migrations to head", cmd_db_upgrade, db)
    p.add_argument("revision", nargs="?", default="head")

    det = sub.add_parser("detectors", help="detector plugins").add_subparsers(
        dest="detectors_command", required=True)
    p = add("list", "the detector plugins found (built-in and installed)", cmd_detectors_list, det)
    p.add_argument("--json", action="store_true")

    p = add("status", "per model version: accepted, rejected by reason, labels joined; "
            "per partition: committed offset and lag", cmd_status)
    p.add_argument("--json", action="store_true")

    p = add("findings", "detector findings, newest windows first", cmd_findings)
    p.add_argument("--json", action="store_true")
    p.add_argument("--since", type=parse_time, help="window start at or after T")
    p.add_argument("--detector")
    p.add_argument("--status", choices=["ok", "warn", "alert", "insufficient_data",
                                        "no_reference"])
    p.add_argument("--limit", type=int, default=1000)

    from monitor import cli_alerts, cli_audit, cli_reference, cli_report, cli_ui
    cli_reference.register(sub, add)
    cli_report.register(sub, add)
    cli_alerts.register(sub, add)
    cli_audit.register(sub, add, db)
    cli_ui.register(sub, add)

    p = add("simulate", "publish ViT traffic from a real small ViT to Kafka (or a file)",
            cmd_simulate)
    from simulator import cli as sim_cli

    sim_cli.add_arguments(p)
    p = add("simulate-train", "retrain the simulator's ViT with the fixed recipe "
            "(--check only verifies the stored weights)", cmd_simulate_train)
    sim_cli.add_train_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        logs.configure(settings.logging.level)
        return args.handler(args, settings)
    except ConfigError as exc:
        print(f"vitmon: bad setting {exc}", file=sys.stderr)
        return 2
    except VitmonError as exc:
        print(f"vitmon: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
