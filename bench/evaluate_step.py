"""Step 6 of the checkpoint as a checkpoint runs it (a benchmark, not a test).

On a database a ``bench/ingest.py`` run left behind, each round opens a transaction, marks
every window state dirty again (``--fresh``: and deletes the findings, so every key has its
first look, as in the run; without it every key has its next look), runs
:meth:`monitor.core.evaluation.WindowEvaluator.evaluate` over every closed window -- state
reads and decode, the detectors' ``evaluate``, the findings' upserts, ``keep_only``,
``mark_evaluated`` -- and rolls back. Prints this process's CPU seconds and the wall seconds of
each round (the first round fills the per-reference memos, as a run's first checkpoints do,
and is not counted unless ``--rounds 1``), and the CPU seconds of its three parts per round:
``prepare`` (the dirty states' rows, their contexts' queries), ``evaluate`` (decode and the
detectors' ``evaluate``), ``write`` (findings, ``keep_only``, ``mark_evaluated``; on their own
thread beside the next window's ``evaluate`` since 2026-12-03), each its own thread's. The cyclic
collector is tuned as ``vitmon run`` tunes it (``monitor.app.service.tune_collector``).
``--dump FILE`` writes every finding the last round wrote (JSON lines, sorted) before the
rollback: two trees' dumps compare findings bit for bit.

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/evaluate_step.py \\
        --database postgresql://postgres@127.0.0.1:5432/benchXXXXXX --rounds 3 --fresh

``--tree PATH`` imports ``monitor`` and ``detectors`` from another checkout (say ``main``'s
worktree) with this driver: alternate runs of the two for an A/B. ``--profile OUT.prof``:
cProfile of the counted rounds.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database", required=True)
    ap.add_argument("--tree", default=str(Path(__file__).resolve().parents[1]),
                    help="checkout to import monitor and detectors from (default: this one)")
    ap.add_argument("--window-s", type=int, default=300, help="windows.size_s of the run")
    ap.add_argument("--lateness-s", type=int, default=60)
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--min-samples", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3, help="counted rounds (after one warm-up)")
    ap.add_argument("--fresh", action="store_true",
                    help="delete the findings first: every key's first look")
    ap.add_argument("--profile", metavar="OUT.prof")
    ap.add_argument("--dump", metavar="FILE", help="the last round's findings, JSON lines")
    args = ap.parse_args()
    sys.path.insert(0, args.tree)
    from sqlalchemy import create_engine, text
    from threadpoolctl import threadpool_limits

    from monitor.app.service import tune_collector
    from monitor.contract import LabelDecision
    from monitor.core.checkpoint_references import CheckpointReferences
    from monitor.core.evaluation import WindowEvaluator
    from monitor.core.registry import load_detectors
    from monitor.store.db import normalise_url
    from monitor.store.references import CachedReferenceLookup

    detectors = {d.name: d for d in load_detectors(None, {})}
    tune_collector()  # the cyclic collector as ``vitmon run`` sets it
    decisions = sorted(n for n, d in detectors.items()
                       if isinstance(d, LabelDecision) and d.label_decision)
    lookup = CachedReferenceLookup({})

    def never(step: str) -> None:
        return None

    evaluator = WindowEvaluator(detectors, args.window_s * 1000, args.lateness_s * 1000,
                                args.alpha, args.min_samples, decisions, 1e9, 0, lookup, never)
    parts = {"prepare": [], "evaluate": [], "write": []}
    _time_parts(evaluator, parts)
    engine = create_engine(normalise_url(args.database))
    prof = cProfile.Profile() if args.profile else None
    cpu, wall = [], []
    rounds = 1 if args.rounds <= 1 else args.rounds + 1
    with threadpool_limits(limits=1):
        for r in range(rounds):
            for spent in parts.values():
                spent.append([])
            with engine.connect() as conn:
                trans = conn.begin()
                conn.execute(text("UPDATE window_states SET dirty = true"))
                if args.fresh:
                    conn.execute(text("DELETE FROM findings"))
                refs = CheckpointReferences(lookup, conn)
                counted = rounds == 1 or r > 0
                c0, w0 = time.process_time(), time.perf_counter()
                if prof and counted:
                    prof.enable()
                found, left = evaluator.evaluate(conn, 2**62, True, refs, None)
                if prof and counted:
                    prof.disable()
                c1, w1 = time.process_time(), time.perf_counter()
                if counted:
                    cpu.append(c1 - c0)
                    wall.append(w1 - w0)
                for spent in parts.values():
                    calls = spent.pop()
                    if counted:
                        spent.append(sum(calls))
                if args.dump and r == rounds - 1:
                    dump(conn, text, args.dump)
                trans.rollback()
    engine.dispose()
    print(f"tree {args.tree}: {len(found)} findings per round, fresh={args.fresh}; "
          f"CPU s {' '.join(f'{c:.3f}' for c in cpu)}; wall s {' '.join(f'{w:.3f}' for w in wall)}")
    for name, spent in parts.items():
        print(f"  {name} CPU s {' '.join(f'{c:.3f}' for c in spent)}")
    if prof:
        prof.dump_stats(args.profile)


def _time_parts(evaluator, parts: dict[str, list]) -> None:
    """Add each call's CPU seconds (its thread's) of ``prepare``, ``_findings`` and the writes
    (``_write``, on their own thread while the next window is judged; ``write`` in trees
    before that) to the round's list (the last entry of each of ``parts``), by wrapping them
    on the instance. The parts overlap in time: their sum exceeds the wall seconds."""
    def timed(name: str, fn):
        def call(*a, **k):
            t0 = time.thread_time()
            out = fn(*a, **k)
            out = list(out) if name == "evaluate" else out  # _findings is a generator
            parts[name][-1].append(time.thread_time() - t0)
            return out
        return call

    writes = "_write" if hasattr(evaluator, "_write") else "write"
    for name, method in (("prepare", "prepare"), ("evaluate", "_findings"), ("write", writes)):
        setattr(evaluator, method, timed(name, getattr(evaluator, method)))


def dump(conn, text, path: str) -> None:
    """Every finding row but its time of writing, sorted by key: one JSON object per line."""
    rows = conn.execute(text(
        "SELECT detector, detector_version, model, model_version, slice, window_start_ms, "
        "window_end_ms, subject, status, severity, test, score, threshold, p_value, n, "
        "details::text AS details, revision FROM findings ORDER BY detector, model, "
        "model_version, slice, window_start_ms, subject")).mappings().all()
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(dict(row), sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
