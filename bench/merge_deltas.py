"""``monitor.store.window_states.merge_deltas`` alone: wall and client-CPU ms of a checkpoint's
merge of ``--keys`` states (the default: 9 detectors x 26 slices x 2 windows, each detector's
state of the stored size ``bench/ingest.py`` prints, random bytes), once inserting (new keys)
and once updating (the same keys again), each round in a transaction rolled back, on a fresh
database of the local PostgreSQL (``VITMON_DATABASE_URL`` or 127.0.0.1:5432). The detectors
are stand-ins whose ``merge``/``dumps`` cost nothing: what is timed is the store's part (pack,
parameters, SQL). ``--against FILE.py`` times another copy of the module (e.g. ``git show
main:monitor/store/window_states.py > /tmp/old.py``) in alternation, so both share the load.

``--real FILE.pickle`` times the default detectors on the real deltas of two checkpoints
instead (their merge, dumps and loads included: ``monitor/codec.py`` too): the first is
inserted, the second merged into it (update and insert), as ``bench/ingest.py``'s checkpoints
do; the file is made once (observing ``bench/observe.py``'s 100,000 events, 26 slices, ~1 min)
and reused. To compare whole trees, run the bench with ``PYTHONPATH`` at each in turn.

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/merge_deltas.py --against /tmp/old.py
    PYTHONPATH=. .venv/bin/python bench/merge_deltas.py --real /tmp/deltas.pickle
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import against  # noqa: E402

from monitor.store import migrate, window_states  # noqa: E402
from monitor.store.db import create_database, drop_database, make_engine  # noqa: E402
from monitor.store.keys import WindowKey  # noqa: E402

#: Stored bytes per key of each default detector in ``bench/ingest.py --events 100000``.
SIZES = {"embedding_drift": 10_358, "examples": 76, "fairness": 46, "feature_drift": 3_599,
         "infra": 178, "performance": 259, "prediction_drift": 2_470, "traffic": 265,
         "version_health": 404}


class StandIn:
    """A detector whose state is its own serialisation and whose merge is the delta."""

    version = 1

    def dumps(self, state: bytes) -> bytes:
        return state

    def loads(self, data: bytes) -> bytes:
        return data

    def merge(self, _a: bytes, b: bytes) -> bytes:
        return b


def real_deltas(path: Path) -> list[tuple[dict, dict]]:
    """(states, counts) of two 50,000-event checkpoints of real traffic, made once into ``path``."""
    if not path.exists():
        import tempfile

        import observe

        from monitor.app.config import Settings
        from monitor.contract import Reference
        from monitor.core.ingest import decode
        from monitor.core.registry import load_detectors
        from monitor.core.windows import Deltas, WindowAssigner
        from slices import SliceCatalog, dimensions
        with tempfile.TemporaryDirectory() as d:
            observe.prepare(Path(d) / "data", 100_000)
            values, profile, attrs = pickle.loads((Path(d) / "data").read_bytes())
        reference = Reference("vit-bench", "1.0", 1, profile)
        settings = Settings()
        assigner = WindowAssigner(
            load_detectors(settings.detectors.enabled, settings.detector_params()),
            dimensions(tuple(attrs)), SliceCatalog(50), 300_000,
            settings.detectors.slice_dimensions)
        out = []
        for part in (values[:50_000], values[50_000:]):
            deltas = Deltas()
            for lo in range(0, len(part), 10_000):
                records = observe._records(part[lo:lo + 10_000])
                for batch in decode.decode_predictions(records, {}).batches.values():
                    assigner.observe(batch, assigner.slice_labels(batch), deltas,
                                     lambda m, v: reference)
            out.append((deltas.states, deltas.counts))
        path.write_bytes(pickle.dumps(out))
    return pickle.loads(path.read_bytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=26, help="slices per window (26)")
    ap.add_argument("--windows", type=int, default=2, help="windows a checkpoint touches (2)")
    ap.add_argument("--rounds", type=int, default=7, help="rounds of insert + update (7)")
    ap.add_argument("--against", metavar="FILE.py", help="another window_states module to time")
    ap.add_argument("--real", metavar="FILE.pickle",
                    help="real deltas of the default detectors (made into FILE if absent)")
    args = ap.parse_args()
    modules = against(window_states, args.against)
    if args.real:
        from monitor.app.config import Settings
        from monitor.core.registry import load_detectors
        settings = Settings()
        detectors = {d.name: d for d in load_detectors(settings.detectors.enabled,
                                                       settings.detector_params())}
        steps = dict(zip(("insert", "update"), real_deltas(Path(args.real)), strict=True))
    else:
        rng = np.random.default_rng(0)
        detectors = {d: StandIn() for d in SIZES}
        deltas = {WindowKey(d, "vit-bench", "1.0", f"s{s:02d}", w * 300_000):
                  rng.bytes(SIZES[d]) for d in SIZES for s in range(args.slices)
                  for w in range(args.windows)}
        steps = {"insert": (deltas, dict.fromkeys(deltas, 10))}
        steps["update"] = steps["insert"]
    admin = os.environ.get("VITMON_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    name = "benchmerge" + uuid.uuid4().hex[:6]
    url = create_database(admin, name)
    runs: dict[str, dict[str, list[tuple[float, float]]]] = {
        k: {"insert": [], "update": []} for k in modules}
    try:
        migrate.upgrade(url)
        engine = make_engine(url)
        for _ in range(args.rounds):
            for label, module in modules.items():
                with engine.connect() as conn:
                    tx = conn.begin()
                    for step, (deltas, counts) in steps.items():
                        wall, cpu = time.perf_counter(), time.process_time()
                        module.merge_deltas(conn, detectors, deltas, counts, 300_000)
                        runs[label][step].append((time.perf_counter() - wall,
                                                  time.process_time() - cpu))
                    tx.rollback()
        engine.dispose()
    finally:
        drop_database(admin, name)
    print(f"load average {os.getloadavg()[0]:.1f}; "
          + ", ".join(f"{step} {len(d)} keys" for step, (d, _) in steps.items())
          + ("" if args.real else f", {sum(map(len, deltas.values())) / 1e6:.1f} MB of states")
          + f", median of {args.rounds}")
    for label, steps in runs.items():
        for step, r in steps.items():
            wall, cpu = (statistics.median(x[i] for x in r) * 1e3 for i in (0, 1))
            print(f"{label:<8} {step}: wall {wall:8.1f} ms, client CPU {cpu:8.1f} ms")


if __name__ == "__main__":
    main()
