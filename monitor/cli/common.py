"""What every command module of the CLI shares: registering a subcommand, a time argument, the
database engine, JSON output. Command modules import this module, never ``main``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from monitor.app.config import Settings
from monitor.core.ingest.timestamps import parse_time
from monitor.store.db import check_reachable, make_engine

Handler = Callable[[argparse.Namespace, Settings], int]
Subparsers = Any  # argparse's private _SubParsersAction


def command(parent: Subparsers, name: str, help_: str, handler: Handler,
            *options: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """A subcommand of ``parent`` whose ``--help`` shows ``help_``, run by ``handler``, with the
    shared ``options`` (e.g. :func:`model_version`, :func:`time_range`) first."""
    p = parent.add_parser(name, help=help_, description=help_,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=handler)
    for add in options:
        add(p)
    return p


def group(parent: Subparsers, name: str, help_: str) -> Subparsers:
    """A command group (``vitmon <name> <subcommand>``)."""
    return parent.add_parser(name, help=help_).add_subparsers(dest=f"{name}_command",
                                                              required=True)


def time_arg(value: str) -> int:
    """An argparse type: epoch milliseconds from RFC 3339, a date, or epoch milliseconds."""
    ms = parse_time(value)
    if ms is None:
        raise argparse.ArgumentTypeError(f"not a time: {value!r} (use RFC 3339 or epoch ms)")
    return ms


def model_version(p: argparse.ArgumentParser) -> None:
    """``--model M --version V``."""
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True)


def time_range(p: argparse.ArgumentParser, required: bool = True) -> None:
    """``--from T --to T`` (event time; optional with ``required=False``)."""
    p.add_argument("--from", dest="from_", type=time_arg, required=required, metavar="T")
    p.add_argument("--to", type=time_arg, required=required, metavar="T")


def engine(settings: Settings) -> Engine:
    """An engine on ``database.url``, after a reachability check (one clear line if not)."""
    url = settings.required_database_url()
    check_reachable(url)
    return make_engine(url)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))
