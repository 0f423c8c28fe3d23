"""``monitor.store.predictions.insert_new`` alone: wall and client-CPU microseconds per row for
``--rows`` of ``bench/ingest.py``'s events (26 slices' terms), each call in a transaction rolled
back, on a fresh database of the local PostgreSQL (``VITMON_DATABASE_URL`` or 127.0.0.1:5432).
``--against FILE.py`` times another copy of the module (e.g. ``git show
271b268:monitor/store/predictions.py > /tmp/old.py``) in alternation, so both share the load.

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/predictions_copy.py --against /tmp/old.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import ATTRS, against, make_events  # noqa: E402

from monitor.core.ingest.decode import decode_predictions  # noqa: E402
from monitor.core.ingest.records import Record  # noqa: E402
from monitor.store import migrate, predictions  # noqa: E402
from monitor.store.db import create_database, drop_database, make_engine  # noqa: E402
from monitor.store.terms import Terms  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--against", metavar="FILE.py", help="another predictions module to time")
    args = ap.parse_args()
    modules = against(predictions, args.against)
    values = make_events(args.rows, 1, 768, 10, 3_600_000, "ev")
    batch = decode_predictions([Record("p", i % 3, i, None, v, -1)
                                for i, v in enumerate(values)], {}).batches["vit-bench"]
    labels = [np.array([f"{k}={v}" for v in batch.attrs[k]], dtype=object) for k in ATTRS]
    starts = (batch.ts_ms // 300_000) * 300_000
    admin = os.environ.get("VITMON_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    name = "benchcopy" + uuid.uuid4().hex[:6]
    url = create_database(admin, name)
    try:
        migrate.upgrade(url)
        engine = make_engine(url)
        runs: dict[str, list[tuple[float, float]]] = {k: [] for k in modules}
        for _ in range(args.rounds):
            for label, module in modules.items():
                with engine.connect() as conn:
                    tx = conn.begin()
                    predictions.ensure_partitions(conn, [batch.ts_ms])
                    wall, cpu = time.perf_counter(), time.process_time()
                    keep = module.insert_new(conn, batch, starts, labels, Terms())
                    runs[label].append(((time.perf_counter() - wall) / args.rows * 1e6,
                                        (time.process_time() - cpu) / args.rows * 1e6))
                    assert keep.all()
                    tx.rollback()
        engine.dispose()
    finally:
        drop_database(admin, name)
    print(f"load average {os.getloadavg()[0]:.1f}; {args.rows:,} rows, median of {args.rounds}")
    for label, r in runs.items():
        wall = sorted(w for w, _ in r)[len(r) // 2]
        cpu = sorted(c for _, c in r)[len(r) // 2]
        print(f"{label:<8} wall {wall:.1f} us/row, client CPU {cpu:.1f} us/row")


if __name__ == "__main__":
    main()
