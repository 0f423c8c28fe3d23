"""``vitmon reference capture|list|show|activate``: versioned reference profiles."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from monitor.config import Settings


def cmd_capture(args: argparse.Namespace, settings: Settings) -> int:
    from monitor import references
    from monitor.cli import _engine
    from monitor.reference_capture import capture, summary

    if (args.file is None) == (args.from_ is None):
        raise SystemExit("vitmon reference capture: give either --file or --from/--to")
    captured = capture(settings, args.model, args.version, file=args.file, from_ms=args.from_,
                       to_ms=args.to, embedding_sample=args.embedding_sample)
    engine = _engine(settings)
    from monitor import migrate
    from monitor.app import database_url

    migrate.upgrade(database_url(settings))
    with engine.begin() as conn:
        ref_id = references.store(conn, args.model, args.version, captured.profile,
                                  captured.source, captured.n_events, summary(captured),
                                  activate=not args.inactive)
    print(json.dumps({"id": ref_id, "model": args.model, "model_version": args.version,
                      "active": not args.inactive, **summary(captured)}, default=str))
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from monitor import references
    from monitor.cli import _engine

    with _engine(settings).connect() as conn:
        rows = references.list_all(conn)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        for r in rows:
            mark = "*" if r["active"] else " "
            print(f"{mark} {r['id']:>4} {r['model']} {r['model_version']} n={r['n_events']} "
                  f"{r['source']} {r['created_at']}")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import text

    from monitor.cli import _engine

    with _engine(settings).connect() as conn:
        row = conn.execute(text("SELECT id, model, model_version, source, n_events, active, "
                                "created_at, summary FROM reference_profiles WHERE id = :i"),
                           {"i": args.id}).one_or_none()
    if row is None:
        raise SystemExit(f"vitmon reference show: no reference with id {args.id}")
    print(json.dumps(row._asdict(), indent=2, default=str))
    return 0


def cmd_activate(args: argparse.Namespace, settings: Settings) -> int:
    from monitor import references
    from monitor.cli import _engine

    with _engine(settings).begin() as conn:
        try:
            references.activate(conn, args.id)
        except KeyError:
            raise SystemExit(f"vitmon reference activate: no reference with id {args.id}") from None
    print(f"reference {args.id} active")
    return 0


def register(sub, add) -> None:
    from monitor.cli import parse_time

    ref = sub.add_parser("reference", help="versioned reference profiles").add_subparsers(
        dest="reference_command", required=True)
    p = add("capture", "build and store a reference profile for a model version from a JSONL "
            "file (vitmon simulate --out) or the predictions topic over an event-time range",
            cmd_capture, ref)
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--file", type=Path, help="JSONL of {topic, key, value} messages")
    p.add_argument("--from", dest="from_", type=parse_time, metavar="T")
    p.add_argument("--to", type=parse_time, metavar="T")
    p.add_argument("--inactive", action="store_true", help="store without activating")
    p.add_argument("--embedding-sample", type=int, metavar="N",
                   help="reference embeddings MMD compares each window with (default 2000; "
                        "fewer: faster embedding_drift, less power)")
    p = add("list", "stored references (* = active)", cmd_list, ref)
    p.add_argument("--json", action="store_true")
    p = add("show", "one reference's summary", cmd_show, ref)
    p.add_argument("id", type=int)
    p = add("activate", "make a reference the active one of its model version", cmd_activate, ref)
    p.add_argument("id", type=int)
