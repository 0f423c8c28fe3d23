"""``vitmon``: the command line. Each subcommand is a small function in a module of this package
(each module registers its commands); errors are one line, never a traceback."""

from __future__ import annotations

import argparse
import sys

from monitor.app import logs
from monitor.app.config import load_settings
from monitor.cli import (
    alerts,
    db,
    demo,
    dlq,
    fairness,
    reference,
    report,
    run,
    simulate,
    slices,
    status,
    ui,
)
from monitor.errors import ConfigError, VitmonError

EPILOG = """\
settings come from --config (YAML) and VITMON_* environment variables (env wins), e.g.
  VITMON_KAFKA_BOOTSTRAP=127.0.0.1:9092 VITMON_DATABASE_URL=postgresql://vitmon@db/vitmon vitmon run
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vitmon", description="Production monitoring and drift detection for ViT models.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML settings file (default: $VITMON_CONFIG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run.register(sub)
    db_group = db.register(sub)
    status.register(sub)
    reference.register(sub)
    report.register(sub)
    alerts.register(sub)
    fairness.register(sub)
    slices.register(sub)
    dlq.register(sub)
    db.register_prune(db_group)
    demo.register(sub)
    ui.register(sub)
    simulate.register(sub)
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
