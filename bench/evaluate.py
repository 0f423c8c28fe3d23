"""Window evaluation alone, per detector (a benchmark, not a test).

Reads every window state of a database a ``bench/ingest.py`` run left behind (or any vitmon
database), decodes each once, then evaluates every key ``--repeat`` times the way a
checkpoint does (same ``EvalContext``: the active reference, ``alpha``, the slice count of its
window as ``n_tests``) and prints CPU seconds per detector, decode (``loads``) and ``evaluate``
separately (process time: on a shared machine wall time mostly measures the neighbours;
``--wall`` for wall-clock seconds). No broker, no writes: it isolates the statistics.

    nice -n 10 .venv/bin/python bench/evaluate.py --database postgresql://postgres@127.0.0.1:5432/benchXXXXXX
    nice -n 10 .venv/bin/python bench/evaluate.py --database URL --profile eval.prof  # cProfile

``--against MODULE=PATH`` (repeatable) times another copy of a module in alternation with this
one, ``--rounds`` times each, the order swapped every round: e.g. ``git show
main:detectors/stats/subspace.py > /tmp/old_subspace.py`` and ``--against
detectors.stats.subspace=/tmp/old_subspace.py``. Every reference to the module or to a function
or class of it (``from X import f``, also inside the other copies) is pointed at the copy for
its turns. Memoised functions (``functools.lru_cache``) in the detectors are cleared before
every pass, so each pass computes what one evaluation of every key computes; the per-profile
memos (reference features) are filled by an untimed first pass.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
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


class Sides:
    """This code and, per ``--against MODULE=PATH``, another copy of the module: ``use(side)``
    points every module-level reference to the module or its functions at that side."""

    def __init__(self, specs: list[str]) -> None:
        self.pairs: dict[int, tuple[object, object]] = {}  # id(this object) -> (this, other)
        self.copies = []
        for spec in specs:
            name, _, path = spec.partition("=")
            this = importlib.import_module(name)
            alias = "against_" + name.replace(".", "_")
            loader = importlib.util.spec_from_file_location(alias, path)
            other = importlib.util.module_from_spec(loader)
            sys.modules[alias] = other  # dataclasses look their module up while building
            loader.loader.exec_module(other)
            self.copies.append(other)
            self.pairs[id(this)] = (this, other)
            for attr, value in vars(this).items():
                if getattr(value, "__module__", None) == name and hasattr(other, attr):
                    self.pairs[id(value)] = (value, getattr(other, attr))
        self.sites = [(m, attr, self.pairs[id(v)]) for m in _modules()
                      for attr, v in list(vars(m).items()) if id(v) in self.pairs]

    def use(self, side: str) -> None:
        for module, attr, (this, other) in self.sites:
            setattr(module, attr, other if side == "against" else this)
        clear_caches()


def _modules() -> list:
    return [m for n, m in list(sys.modules.items()) if m is not None and (
        n.split(".")[0] in ("detectors", "monitor") or n.startswith("against_"))]


def clear_caches() -> None:
    """Every pass computes its memoised values again (functools.lru_cache in the detectors)."""
    for m in _modules():
        for v in list(vars(m).values()):
            if callable(getattr(v, "cache_clear", None)):
                v.cache_clear()


def timed(by_det: dict, detectors: dict, ctxs: dict, clock_into: dict, count: dict,
          prof: cProfile.Profile | None = None) -> None:
    """One evaluation of every key, CPU (or wall) seconds per detector added to ``clock_into``."""
    for name, states in sorted(by_det.items()):
        det = detectors[name]
        t0 = CLOCK()
        if prof:
            prof.enable()
        for s, ctx in zip(states, ctxs[name], strict=True):
            det.evaluate(s.state, ctx)
        if prof:
            prof.disable()
        clock_into[name] += CLOCK() - t0
        count[name] += len(states)


def table(head: tuple[str, ...], rows: list[tuple[str, ...]], total: tuple[str, ...]) -> None:
    widths = [18, *(max(8, len(h)) for h in head[1:])]
    for row in (head, *rows, total):
        print(" ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True))))


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
    ap.add_argument("--against", action="append", default=[], metavar="MODULE=PATH",
                    help="time another copy of MODULE (a file) in alternation with this one")
    ap.add_argument("--rounds", type=int, default=3, help="alternations with --against")
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
    ctxs = {name: [EvalContext(state_key(s.key, size), refs[(s.key.model, s.key.model_version)],
                               args.alpha, slices.get((name, s.key.model, s.key.model_version,
                                                       s.key.window_start_ms), 1),
                               args.min_samples, 0) for s in states]
            for name, states in by_det.items()}
    if args.against:
        sides = Sides(args.against)
        timed(by_det, detectors, ctxs, defaultdict(float), defaultdict(int))  # fills the memos
        other: dict[str, float] = defaultdict(float)
        for r in range(args.rounds):
            for side in (("against", "this") if r % 2 == 0 else ("this", "against")):
                sides.use(side)
                timed(by_det, detectors, ctxs, other if side == "against" else evaluate,
                      count if side == "this" else defaultdict(int))
        sides.use("this")
        print(f"{len(stored)} keys, {args.rounds} alternating rounds; against: "
              + ", ".join(args.against))
        table(("detector", "keys", "against ms/key", "this ms/key"),
              [(name, f"{count[name] // args.rounds}", f"{1000 * other[name] / count[name]:.2f}",
                f"{1000 * evaluate[name] / count[name]:.2f}")
               for name in sorted(evaluate, key=lambda k: -other[k])],
              ("total s", f"{len(stored)}", f"{sum(other.values()):.3f}",
               f"{sum(evaluate.values()):.3f}"))
        return
    for _ in range(args.repeat):
        clear_caches()
        timed(by_det, detectors, ctxs, evaluate, count, prof)
    print(f"{len(stored)} states read in {t_load:.2f} s; {args.repeat} evaluation(s) each")
    table(("detector", "keys", "loads s", "evaluate s", "ms/key"),
          [(name, f"{count[name] // args.repeat}", f"{decode[name]:.3f}", f"{evaluate[name]:.3f}",
            f"{1000 * evaluate[name] / count[name]:.2f}")
           for name in sorted(evaluate, key=lambda k: -evaluate[k])],
          ("total", f"{len(stored)}", f"{sum(decode.values()):.3f}",
           f"{sum(evaluate.values()):.3f}", ""))
    if prof:
        prof.dump_stats(args.profile)


if __name__ == "__main__":
    main()
