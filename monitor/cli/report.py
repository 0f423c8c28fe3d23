"""``vitmon report drift``: Evidently's data drift report for one window vs the reference."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from monitor.app.config import Settings
from monitor.cli.common import Subparsers, command, engine, group, model_version, time_arg


def cmd_drift(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.reports.drift_report import drift_report

    summary = drift_report(settings, engine(settings), args.model, args.version, args.slice,
                           args.window_start, args.out, reference_file=args.reference_file,
                           reference_rows=args.reference_rows)
    print(json.dumps(summary))
    return 0


def register(sub: Subparsers) -> None:
    from monitor.reports.drift_report import DEFAULT_REFERENCE_ROWS

    p = command(group(sub, "report", "deep-dive reports"), "drift",
                "Evidently's data drift report (HTML) for one window of one slice vs the active "
                "reference; the window's events are replayed from the predictions topic",
                cmd_drift, model_version)
    p.add_argument("--slice", default="all", help="e.g. camera_id=cam-03 (default: all)")
    p.add_argument("--window-start", required=True, type=time_arg, metavar="T",
                   help="any time inside the window (RFC 3339 or epoch ms)")
    p.add_argument("--out", required=True, type=Path, help="HTML file to write")
    p.add_argument("--reference-file", type=Path, metavar="F.jsonl",
                   help="reference rows from this JSONL (raw events or vitmon simulate --out) "
                        "instead of sampling them from the stored profile's sketches")
    p.add_argument("--reference-rows", type=int, default=DEFAULT_REFERENCE_ROWS,
                   help="rows sampled from the profile (default %(default)s)")
