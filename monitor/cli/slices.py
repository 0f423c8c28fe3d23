"""``vitmon slices discover``: worst-slice discovery over labelled predictions."""

from __future__ import annotations

import argparse
import json

from monitor.app.config import Settings
from monitor.cli.common import Subparsers, command, engine, group, model_version, time_range


def cmd_discover(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.reports.worst_slices import as_json, run

    d = run(engine(settings), settings.reports.worst_slices, args.model, args.version,
            args.from_, args.to, alpha=args.alpha, write=not args.dry_run)
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


def register(sub: Subparsers) -> None:
    p = command(group(sub, "slices", "slices"), "discover",
                "worst-slice discovery over the labelled predictions of a range; writes "
                "`worst_slice` findings", cmd_discover, model_version, time_range)
    p.add_argument("--alpha", type=float, default=0.05, help="false discovery rate")
    p.add_argument("--dry-run", action="store_true", help="print, do not write findings")
    p.add_argument("--json", action="store_true")
