"""``vitmon reference capture|list|show|activate``: versioned reference profiles."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from monitor.app.config import Settings
from monitor.cli.common import Subparsers, command, engine, group, model_version, print_json, time_range


def cmd_capture(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.reports.reference_capture import capture, summary
    from monitor.store import migrate, references

    if (args.file is None) == (args.from_ is None):
        raise SystemExit("vitmon reference capture: give either --file or --from/--to")
    captured = capture(settings, args.model, args.version, file=args.file, from_ms=args.from_,
                       to_ms=args.to, embedding_sample=args.embedding_sample)
    db = engine(settings)
    migrate.upgrade(settings.required_database_url())
    with db.begin() as conn:
        ref_id = references.store(conn, args.model, args.version, captured.profile,
                                  captured.source, captured.n_events, summary(captured),
                                  activate=not args.inactive)
    print(json.dumps({"id": ref_id, "model": args.model, "model_version": args.version,
                      "active": not args.inactive, **summary(captured)}, default=str))
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.store import references

    with engine(settings).connect() as conn:
        rows = references.list_all(conn)
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            mark = "*" if r["active"] else " "
            print(f"{mark} {r['id']:>4} {r['model']} {r['model_version']} n={r['n_events']} "
                  f"{r['source']} {r['created_at']}")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.store import references

    with engine(settings).connect() as conn:
        row = references.show(conn, args.id)
    if row is None:
        raise SystemExit(f"vitmon reference show: no reference with id {args.id}")
    print_json(row)
    return 0


def cmd_activate(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.store import references

    with engine(settings).begin() as conn:
        try:
            references.activate(conn, args.id)
        except KeyError:
            raise SystemExit(f"vitmon reference activate: no reference with id {args.id}") from None
    print(f"reference {args.id} active")
    return 0


def register(sub: Subparsers) -> None:
    ref = group(sub, "reference", "versioned reference profiles")
    p = command(ref, "capture", "build and store a reference profile for a model version from a "
                "JSONL file (raw events, or vitmon simulate --out) or the predictions topic over "
                "an event-time range", cmd_capture, model_version)
    p.add_argument("--file", type=Path, help="JSONL of raw events or of {topic, key, value} "
                   "messages (vitmon simulate --out)")
    time_range(p, required=False)
    p.add_argument("--inactive", action="store_true", help="store without activating")
    p.add_argument("--embedding-sample", type=int, metavar="N",
                   help="reference embeddings each window is compared with (default 2000; "
                        "fewer: faster embedding_drift, less power)")
    p = command(ref, "list", "stored references (* = active)", cmd_list)
    p.add_argument("--json", action="store_true")
    p = command(ref, "show", "one reference's summary", cmd_show)
    p.add_argument("id", type=int)
    p = command(ref, "activate", "make a reference the active one of its model version",
                cmd_activate)
    p.add_argument("id", type=int)
