"""Window evaluation alone, per detector (a benchmark, not a test).

Reads every window state of a database a ``bench/ingest.py`` run left behind (or any vitmon
database), decodes each once, then evaluates every key ``--repeat`` times the way a
checkpoint does (same ``EvalContext``: the active reference, ``alpha``, the slice count of its
window as ``n_tests``) and prints CPU seconds per detector, decode (``loads``) and ``evaluate``
separately (process time: on a shared machine wall time mostly measures the neighbours;
``--wall`` for wall-clock seconds). No broker, no writes: it isolates the statistics.

    nice -n 10 .venv/bin/python bench/evaluate.py --database postgresql://postgres@127.0.0.1:5432/benchXXXXXX
    nice -n 10 .venv/bin/python bench/evaluate.py --database URL --profile eval.prof  # cProfile
"""

from __future__ import annotations

import argparse
import cProfile
import sys
import time
from collections import defaultdict
from pathlib import Path

from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.contract import EvalContext  # noqa: E402
from monitor.core.registry import load_detectors  # noqa: E402
from monitor.core.windows import state_key  # noqa: E402
from monitor.store import window_states  # noqa: E402
from monitor.store.db import normalise_url  # noqa: E402
from monitor.store.references import CachedReferenceLookup  # noqa: E402

CLOCK = time.process_time  # --wall: time.perf_counter


def main() -> None:
    global CLOCK
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database", required=True)
    ap.add_argument("--window-s", type=int, default=300, help="windows.size_s of the run")
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--min-samples", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--wall", action="store_true", help="wall-clock seconds, not CPU seconds")
    ap.add_argument("--detectors", default="", help="comma-separated names (default: all)")
    ap.add_argument("--profile", metavar="OUT.prof", help="cProfile of the evaluate calls")
    args = ap.parse_args()
    if args.wall:
        CLOCK = time.perf_counter
    size = args.window_s * 1000
    names = tuple(n for n in args.detectors.split(",") if n) or None
    detectors = {d.name: d for d in load_detectors(names, {})}
    engine = create_engine(normalise_url(args.database))
    lookup = CachedReferenceLookup({})
    with engine.connect() as conn:
        t0 = CLOCK()
        stored = window_states.load_states(conn, detectors)
        t_load = CLOCK() - t0
        windows = sorted({(s.key.detector, s.key.model, s.key.model_version,
                           s.key.window_start_ms) for s in stored})
        slices = window_states.slices_in_windows(conn, windows)
        refs = {(s.key.model, s.key.model_version): lookup(conn, s.key.model,
                                                           s.key.model_version)
                for s in stored}
    engine.dispose()
    decode: dict[str, float] = defaultdict(float)
    evaluate: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for s in stored:
        t0 = CLOCK()
        _ = s.state
        decode[s.key.detector] += CLOCK() - t0
    prof = cProfile.Profile() if args.profile else None
    by_det: dict[str, list] = defaultdict(list)
    for s in stored:
        by_det[s.key.detector].append(s)
    for name, states in sorted(by_det.items()):
        det = detectors[name]
        ctxs = [EvalContext(state_key(s.key, size), refs[(s.key.model, s.key.model_version)],
                            args.alpha, slices.get((name, s.key.model, s.key.model_version,
                                                    s.key.window_start_ms), 1),
                            args.min_samples, 0) for s in states]
        for _ in range(args.repeat):
            t0 = CLOCK()
            if prof:
                prof.enable()
            for s, ctx in zip(states, ctxs, strict=True):
                det.evaluate(s.state, ctx)
            if prof:
                prof.disable()
            evaluate[name] += CLOCK() - t0
            count[name] += len(states)
    print(f"{len(stored)} states read in {t_load:.2f} s; {args.repeat} evaluation(s) each")
    print(f"{'detector':<18} {'keys':>6} {'loads s':>8} {'evaluate s':>11} {'ms/key':>8}")
    for name in sorted(evaluate, key=lambda k: -evaluate[k]):
        n = count[name]
        print(f"{name:<18} {n // args.repeat:>6} {decode[name]:>8.3f} {evaluate[name]:>11.3f} "
              f"{1000 * evaluate[name] / n:>8.2f}")
    print(f"{'total':<18} {len(stored):>6} {sum(decode.values()):>8.3f} "
          f"{sum(evaluate.values()):>11.3f}")
    if prof:
        prof.dump_stats(args.profile)


if __name__ == "__main__":
    main()
