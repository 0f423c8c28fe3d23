"""``vitmon fairness report``, ``vitmon slices discover`` and ``vitmon db prune``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from monitor.config import Settings


def cmd_fairness_report(args: argparse.Namespace, settings: Settings) -> int:
    from detectors.fairness import Fairness
    from monitor.cli import _engine
    from monitor.fairness_report import report

    det = Fairness(**settings.detector_params()["fairness"])
    if not det.dimensions:
        print("vitmon: bad setting fairness.attributes: no protected attributes configured",
              file=sys.stderr)
        return 2
    text = report(_engine(settings), det, settings.detectors.alpha, args.model, args.version,
                  args.from_, args.to, args.format, args.slice)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.format} fairness report to {args.out}")
    return 0


def cmd_slices_discover(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.cli import _engine
    from monitor.worst_slices import as_json, run

    d = run(_engine(settings), settings.worst_slices, args.model, args.version, args.from_,
            args.to, alpha=args.alpha, write=not args.dry_run)
    if args.json:
        print(json.dumps({"model": d.model, "model_version": d.model_version,
                          "from_ms": d.from_ms, "to_ms": d.to_ms, "labelled": d.n_labelled,
                          "error_rate": d.error_rate,
                          "slices": [{"slice": f.name, **as_json(f, i)}
                                     for i, f in enumerate(d.findings, start=1)]}, indent=2))
        return 0
    print(f"{d.n_labelled} labelled predictions, error rate {d.error_rate:.3f}")
    for i, f in enumerate(d.findings, start=1):
        print(f"{i:>3}. {f.name:<50} n={f.n:<6} error={f.error_rate:.3f} "
              f"(+{f.effect:.3f}) p_adj={f.p_adjusted:.2g}")
    return 0


def cmd_db_prune(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.cli import _engine
    from monitor.retention import prune

    r = prune(_engine(settings), settings.retention, before_ms=args.before)
    print(json.dumps({"cutoff_ms": r.cutoff_ms, "deleted": r.deleted, "batches": r.batches}))
    return 0


def register(sub: Any, add: Any, db: Any) -> None:
    from monitor.cli import parse_time

    fair = sub.add_parser("fairness", help="fairness audit").add_subparsers(
        dest="fairness_command", required=True)
    p = add("report", "the fairness audit of a model version over an event-time range, as a "
            "self-contained HTML file or CSV", cmd_fairness_report, fair)
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--from", dest="from_", type=parse_time, required=True, metavar="T")
    p.add_argument("--to", type=parse_time, required=True, metavar="T")
    p.add_argument("--format", choices=["html", "csv"], default="html")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--slice", default="all", help="audit inside this slice (default: all)")

    sl = sub.add_parser("slices", help="slices").add_subparsers(dest="slices_command",
                                                                 required=True)
    p = add("discover", "worst-slice discovery over the labelled predictions of a range; "
            "writes `worst_slice` findings", cmd_slices_discover, sl)
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--from", dest="from_", type=parse_time, required=True, metavar="T")
    p.add_argument("--to", type=parse_time, required=True, metavar="T")
    p.add_argument("--alpha", type=float, default=0.05, help="false discovery rate")
    p.add_argument("--dry-run", action="store_true", help="print, do not write findings")
    p.add_argument("--json", action="store_true")

    p = add("prune", "delete predictions older than the label horizon, in batches", cmd_db_prune,
            db)
    p.add_argument("--before", type=parse_time, metavar="T",
                   help="cutoff (default: the consumers' watermark - retention.label_horizon_s)")
