"""``detectors.stats.subspace.permutation_test`` alone: thread CPU ms per call on the shapes
``bench/ingest.py`` sends it (the first window's 20 camera slices hold ~50 events each when
evaluated: a ~450-row reference sample, 16 axes + the residual, 5,777 permutations for 26
slices at alpha 0.01), plus the largest window the fallback takes (199 events) and the
``max_permutations`` cap. ``--against FILE.py`` times another copy of the module (e.g. ``git
show main:detectors/stats/subspace.py > /tmp/old.py``) in alternation, so both share the load,
and prints both p-values (the random streams differ; they must agree within Monte Carlo error).

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/permutation.py --against /tmp/old.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import against  # noqa: E402

from detectors.stats import subspace  # noqa: E402

#: (reference rows, window rows, permutations): bench/ingest.py's calls, then the edges.
SHAPES = [(450, 50, 5_777), (450, 199, 5_777), (450, 50, 20_000)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--axes", type=int, default=16)
    ap.add_argument("--against", metavar="FILE.py", help="another subspace module to time")
    args = ap.parse_args()
    mods = against(subspace, args.against)
    rng = np.random.default_rng(0)
    w = np.sort(rng.random(args.axes))[::-1]
    w /= w.sum()
    for n_ref, m, b in SHAPES:
        ref = rng.normal(size=(n_ref, args.axes + 1)).astype(np.float16).astype(np.float64)
        win = rng.normal(size=(m, args.axes + 1)).astype(np.float16).astype(np.float64)
        ms: dict[str, list[float]] = {k: [] for k in mods}
        p: dict[str, float] = {}
        for r in range(args.rounds):
            for name, mod in mods.items():
                t0 = time.thread_time()
                p[name] = mod.permutation_test(ref, win, w, b, r)[4]
                ms[name].append((time.thread_time() - t0) * 1e3)
        row = "  ".join(f"{k} {statistics.median(v):7.1f} ms (min {min(v):.1f}) p={p[k]:.4f}"
                        for k, v in ms.items())
        print(f"n_ref={n_ref} m={m} B={b}: {row}")


if __name__ == "__main__":
    main()
