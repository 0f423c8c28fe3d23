"""``vitmon report drift``: Evidently's data drift report for one window vs the reference."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from monitor.config import Settings


def cmd_drift(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.drift_report import drift_report

    summary = drift_report(settings, args.model, args.version, args.slice, args.window_start,
                           args.out, reference_file=args.reference_file,
                           reference_rows=args.reference_rows)
    print(json.dumps(summary))
    return 0


def register(sub, add) -> None:
    from monitor.cli import parse_time
    from monitor.drift_report import DEFAULT_REFERENCE_ROWS

    rep = sub.add_parser("report", help="deep-dive reports").add_subparsers(
        dest="report_command", required=True)
    p = add("drift", "Evidently's data drift report (HTML) for one window of one slice vs the "
            "active reference; the window's events are replayed from the predictions topic",
            cmd_drift, rep)
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--slice", default="all", help="e.g. camera_id=cam-03 (default: all)")
    p.add_argument("--window-start", required=True, type=parse_time, metavar="T",
                   help="any time inside the window (RFC 3339 or epoch ms)")
    p.add_argument("--out", required=True, type=Path, help="HTML file to write")
    p.add_argument("--reference-file", type=Path, metavar="F.jsonl",
                   help="reference rows from this JSONL (vitmon simulate --out format) instead of "
                        "sampling them from the stored profile's sketches")
    p.add_argument("--reference-rows", type=int, default=DEFAULT_REFERENCE_ROWS,
                   help="rows sampled from the profile (default %(default)s)")
