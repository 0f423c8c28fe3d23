"""``monitor.store.predictions.insert_new`` alone: wall, client-CPU and server-CPU microseconds
per row for ``--rows`` of ``bench/ingest.py``'s events (26 slices' terms), each call in a
transaction rolled back, on a fresh database of the local PostgreSQL (``VITMON_DATABASE_URL`` or
127.0.0.1:5432) holding ``--prefill`` committed predictions already: the batch is the last
quarter of an hour that the prefill covers the first three quarters of, as the fourth 50,000
event checkpoint of ``bench/ingest.py`` finds the table. ``--days`` more day partitions before
it, each with ``--prefill`` rows, show what the duplicate probe costs as partitions accumulate
(14 days are kept for the label join by default). Server CPU is the backend's own (utime +
stime from ``/proc``), so only when PostgreSQL runs on this machine; it moves less with the
neighbours' load than wall time. ``--against FILE.py`` times another copy of the module (e.g.
``git show 271b268:monitor/store/predictions.py > /tmp/old.py``) in alternation, so both share
the load.

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/predictions_copy.py --against /tmp/old.py
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import ATTRS, T0_MS, against, make_events  # noqa: E402

from monitor.contract import Batch  # noqa: E402
from monitor.core.ingest.decode import decode_predictions  # noqa: E402
from monitor.core.ingest.records import Record  # noqa: E402
from monitor.store import migrate, predictions  # noqa: E402
from monitor.store.db import create_database, drop_database, make_engine  # noqa: E402
from monitor.store.terms import Terms  # noqa: E402

HOUR_MS = 3_600_000


def _batch(n: int, seed: int, prefix: str, start_ms: int, span_ms: int, dim: int = 768
           ) -> tuple[Batch, list[np.ndarray], np.ndarray]:
    values = make_events(n, seed, dim, 10, span_ms, prefix, start_ms=start_ms)
    batch = decode_predictions([Record("p", i % 3, i, None, v, -1)
                                for i, v in enumerate(values)], {}).batches["vit-bench"]
    labels = [np.array([f"{k}={v}" for v in batch.attrs[k]], dtype=object) for k in ATTRS]
    return batch, labels, (batch.ts_ms // 300_000) * 300_000


def _backend_cpu_s(raw) -> float | None:  # noqa: ANN001 - a psycopg connection
    """CPU seconds of this connection's PostgreSQL backend so far (None if not on this host)."""
    try:
        with open(f"/proc/{raw.info.backend_pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _prefill(engine, n: int, days: int) -> None:  # noqa: ANN001 - an Engine
    """``n`` committed predictions in the first 45 minutes of the batch's day and in each of
    ``days`` days before it (ids ``pre{d}-{i}``, as bench/ingest.py's earlier checkpoints)."""
    for d in range(days, -1, -1):
        if not n:
            return
        batch, labels, starts = _batch(n, 100 + d, f"pre{d}", T0_MS - d * 86_400_000,
                                       HOUR_MS * 3 // 4, dim=8)
        with engine.begin() as conn:
            terms = Terms()
            terms.begin()
            predictions.ensure_partitions(conn, [batch.ts_ms])
            predictions.insert_new(conn, batch, starts, labels, terms)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE predictions")


def _spin() -> None:
    while True:
        sum(range(1000))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--prefill", type=int, default=150_000,
                    help="committed predictions in the batch's day (and in each --days day)")
    ap.add_argument("--days", type=int, default=0, help="earlier day partitions, prefilled")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--against", metavar="FILE.py", help="another predictions module to time")
    ap.add_argument("--busy", action="store_true",
                    help="a second thread runs Python meanwhile, as vitmon run's polling thread "
                         "decodes: each wait on PostgreSQL then costs a GIL handover (up to the "
                         "5 ms switch interval); client CPU then counts both threads")
    args = ap.parse_args()
    if args.busy:
        threading.Thread(target=_spin, daemon=True).start()
    modules = against(predictions, args.against)
    batch, labels, starts = _batch(args.rows, 1, "ev", T0_MS + HOUR_MS * 3 // 4, HOUR_MS // 4)
    admin = os.environ.get("VITMON_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    name = "benchcopy" + uuid.uuid4().hex[:6]
    url = create_database(admin, name)
    try:
        migrate.upgrade(url)
        engine = make_engine(url)
        _prefill(engine, args.prefill, args.days)
        runs: dict[str, list[tuple[float, float, float]]] = {k: [] for k in modules}
        for _ in range(args.rounds):
            for label, module in modules.items():
                with engine.connect() as conn:
                    tx = conn.begin()
                    predictions.ensure_partitions(conn, [batch.ts_ms])
                    raw = conn.connection.dbapi_connection
                    server = _backend_cpu_s(raw)
                    wall, cpu = time.perf_counter(), time.process_time()
                    keep = module.insert_new(conn, batch, starts, labels, Terms())
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                    server = None if server is None else _backend_cpu_s(raw) - server
                    runs[label].append((wall / args.rows * 1e6, cpu / args.rows * 1e6,
                                        float("nan") if server is None else
                                        server / args.rows * 1e6))
                    assert keep.all()
                    tx.rollback()
                # the rolled-back rows' index entries would make the next round's unique
                # checks visit the heap (a committed checkpoint leaves none behind)
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("VACUUM predictions")
        engine.dispose()
    finally:
        drop_database(admin, name)
    print(f"load average {os.getloadavg()[0]:.1f}; {args.rows:,} rows onto {args.prefill:,} "
          f"stored (+{args.days} earlier days), median of {args.rounds}")
    for label, r in runs.items():
        wall, cpu, server = (sorted(x[i] for x in r)[len(r) // 2] for i in range(3))
        print(f"{label:<8} wall {wall:.1f} us/row, client CPU {cpu:.1f} us/row, "
              f"server CPU {server:.1f} us/row  (wall: {' '.join(f'{x[0]:.1f}' for x in r)})")


if __name__ == "__main__":
    main()
