"""``vitmon fairness report``: the fairness audit of a model version over a time range."""

from __future__ import annotations

import argparse
from pathlib import Path

from monitor.app.config import Settings
from monitor.cli.common import Subparsers, command, engine, group, model_version, time_range

DETECTOR = "fairness"  # the entry point of the detector whose audit this command exports


def cmd_fairness_report(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.core.registry import load_detectors
    from monitor.reports.fairness_report import range_report

    det = load_detectors((DETECTOR,), settings.detector_params())[0]
    text = range_report(engine(settings), det, settings.detectors.alpha, args.model, args.version,
                        args.from_, args.to, args.format, args.slice)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.format} fairness report to {args.out}")
    return 0


def register(sub: Subparsers) -> None:
    p = command(group(sub, "fairness", "fairness audit"), "report",
                "the fairness audit of a model version over an event-time range, as a "
                "self-contained HTML file or CSV", cmd_fairness_report, model_version, time_range)
    p.add_argument("--format", choices=["html", "csv"], default="html")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--slice", default="all", help="audit inside this slice (default: all)")
