"""``WindowAssigner.observe`` alone (a benchmark, not a test): CPU seconds to observe
``bench/ingest.py``'s events (768-d f16 embeddings, 10 classes, 26 slices, 12 five-minute
windows) with every default detector against a reference captured from 20,000 other events of
the same traffic, in batches of ``--poll`` events the way a checkpoint does (slice labels, then
observe into one checkpoint's deltas), plus CPU seconds per detector. Decoding is not timed.

``--ahead`` also times a pass over batches whose per-row work the decode worker ran ahead
(``monitor.contract.Precomputable``: ``embedding_drift``'s projections and id hashes, computed
untimed here, as the worker does beside decoding): what stays on the consumer's interpreter with
``kafka.decode_workers=1``.

``--against REV`` times the tree of another git revision (``git archive REV``) in alternation
with this one, each round in a fresh subprocess that imports only its own tree, so changes
spread over several modules (core, detectors, stats) are compared as a whole; both see the same
events and reference (pickled once here).

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/observe.py --against main
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent


def _records(values: list[bytes]) -> list[SimpleNamespace]:
    return [SimpleNamespace(topic="p", partition=i % 3, offset=i, key=None, value=v,
                            timestamp_ms=0) for i, v in enumerate(values)]


def prepare(path: Path, events: int) -> None:
    """Write the events (raw JSON) and the captured reference profile to ``path``."""
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    from ingest import ATTRS, REFERENCE_EVENTS, make_events

    from monitor.app.config import load_settings
    from monitor.reports.reference_capture import capture
    span = 12 * 300_000
    with tempfile.TemporaryDirectory() as d:
        ref_file = Path(d) / "reference.jsonl"
        ref_file.write_bytes(b"\n".join(make_events(REFERENCE_EVENTS, 2, 768, 10, span, "ref"))
                             + b"\n")
        settings = load_settings(env={"VITMON_SLICES__ATTRIBUTES": "[" + ",".join(ATTRS) + "]"})
        profile = capture(settings, "vit-bench", "1.0", file=ref_file).profile
    values = make_events(events, 1, 768, 10, span, "ev")
    path.write_bytes(pickle.dumps((values, profile, list(ATTRS))))


def worker(data: Path, root: Path, poll: int, rounds: int, ahead: bool = False) -> None:
    """Time observe in the tree at ``root``; print one line of CPU seconds per round."""
    sys.path.insert(0, str(root))
    import numpy as np  # noqa: F401  (imported before the clock is patched)

    from monitor.app.config import Settings
    from monitor.contract import Reference
    from monitor.core.ingest import decode
    from monitor.core.registry import load_detectors
    from monitor.core.stages import StageClock
    from monitor.core.windows import Deltas, WindowAssigner
    from slices import SliceCatalog, dimensions

    assert Path(decode.__file__).resolve().is_relative_to(root.resolve()), decode.__file__
    values, profile, attrs = pickle.loads(data.read_bytes())
    reference = Reference("vit-bench", "1.0", 1, profile)
    settings = Settings()
    detectors = load_detectors(settings.detectors.enabled, settings.detector_params())
    batches = []
    for lo in range(0, len(values), poll):
        out = decode.decode_predictions(_records(values[lo:lo + poll]), {})
        if ahead:
            from monitor.contract import PRECOMPUTED, Precomputable
            from monitor.core.decode_pool import precompute
            precompute(out, {("vit-bench", "1.0"): [
                (PRECOMPUTED.format(d.name, fn.key), fn) for d in detectors
                if isinstance(d, Precomputable) and (fn := d.precompute(reference)) is not None]})
        batches += list(out.batches.values())
    wall = time.perf_counter
    time.perf_counter = time.process_time  # the stage clock reads CPU seconds
    try:
        for _ in range(rounds):
            assigner = WindowAssigner(detectors, dimensions(tuple(attrs)), SliceCatalog(50),
                                      300_000, settings.detectors.slice_dimensions)
            clock, deltas = StageClock(), Deltas()
            t0 = time.process_time()
            for batch in batches:
                with clock("slice_labels"):
                    labels = assigner.slice_labels(batch)
                with clock("observe"):
                    assigner.observe(batch, labels, deltas, lambda m, v: reference, clock)
            total = time.process_time() - t0
            stages = clock.drain()
            print("ROUND", total, " ".join(f"{k}={v}" for k, v in sorted(stages.items())),
                  flush=True)
    finally:
        time.perf_counter = wall


def _run(data: Path, root: Path, args: argparse.Namespace,
         ahead: bool = False) -> list[tuple[float, dict]]:
    cmd = [sys.executable, __file__, "--worker", str(data), "--root", str(root),
           "--poll", str(args.poll), "--rounds", str(args.rounds), *(["--ahead"] * ahead)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "1"}).stdout
    rounds = []
    for line in out.splitlines():
        if line.startswith("ROUND "):
            total, *kv = line.split()[1:]
            rounds.append((float(total), {k: float(v) for k, v in (x.split("=") for x in kv)}))
    return rounds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--poll", type=int, default=10_000, help="events per observed batch")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per subprocess")
    ap.add_argument("--repeats", type=int, default=3, help="subprocesses per tree")
    ap.add_argument("--against", metavar="REV", help="another git revision to time")
    ap.add_argument("--ahead", action="store_true", help="also time batches with the per-row "
                    "work run ahead (decode worker)")
    ap.add_argument("--worker", metavar="DATA", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(Path(args.worker), Path(args.root), args.poll, args.rounds, args.ahead)
        return
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "data.pickle"
        print(f"generating {args.events:,} + 20,000 reference events...", file=sys.stderr)
        prepare(data, args.events)
        trees = {"this": HERE.parent}
        if args.against:
            other = Path(d) / "against"
            other.mkdir()
            archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", args.against],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(other)], input=archive, check=True)
            trees = {f"{args.against}": other, "this": HERE.parent}
        runs: dict[str, list[tuple[float, dict]]] = {k: [] for k in trees}
        if args.ahead:
            runs["this, ahead"] = []
        for _ in range(args.repeats):
            for k, root in trees.items():
                runs[k] += _run(data, root, args)
            if args.ahead:
                runs["this, ahead"] += _run(data, HERE.parent, args, ahead=True)
    n = args.events
    print(f"{n:,} events in batches of {args.poll:,}, 26 slices, every default detector; "
          f"CPU s per pass (min / median of {args.repeats} x {args.rounds})")
    for k, r in runs.items():
        totals = [t for t, _ in r]
        print(f"{k:12s} slice labels + observe: {min(totals):.3f} / {statistics.median(totals):.3f}"
              f" s ({n / min(totals):,.0f} events/CPU-s)")
        for stage in sorted(r[0][1], key=lambda s: -r[0][1][s]):
            vals = [x[1].get(stage, 0.0) for x in r]
            print(f"  {stage:<28} {min(vals):.3f} / {statistics.median(vals):.3f}")


if __name__ == "__main__":
    main()
