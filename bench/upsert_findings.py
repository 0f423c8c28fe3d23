"""``monitor.store.findings.upsert_findings`` alone: wall and client-CPU ms to write one
evaluated window's findings (the default: 9 detectors x 26 slices, 4 findings a key, details of
a few hundred bytes like embedding_drift's), once inserting (new rows) and once updating (the
same rows again), each round in a transaction rolled back, on a fresh database of the local
PostgreSQL (``VITMON_DATABASE_URL`` or 127.0.0.1:5432). ``--against FILE.py`` times another
copy of the module (e.g. ``git show main:monitor/store/findings.py > /tmp/old.py``) in
alternation, so both share the machine's load.

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/upsert_findings.py --against /tmp/old.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import against  # noqa: E402

from monitor.contract import Finding, Status  # noqa: E402
from monitor.store import findings, migrate  # noqa: E402
from monitor.store.db import create_database, drop_database, make_engine  # noqa: E402
from monitor.store.keys import WindowKey  # noqa: E402

DETECTORS = ("embedding_drift", "examples", "fairness", "feature_drift", "infra", "performance",
             "prediction_drift", "traffic", "version_health")


def rows(slices: int, per_key: int) -> list[tuple[WindowKey, int, Finding]]:
    out = []
    for d in DETECTORS:
        for s in range(slices):
            key = WindowKey(d, "vit-bench", "1.0", f"camera_id=cam-{s:02d}", 300_000)
            for j in range(per_key):
                details = {"test": "ks", "p_value_raw": 0.5 / (j + 1), "n_ref": 2000,
                           "component_shift": [0.01 * i for i in range(5)], "subject": j}
                out.append((key, 600_000, Finding(d, 1, Status.OK, score=0.1 * j,
                                                  threshold=None if j else 1.5,
                                                  p_value=0.3, n=800, subject=f"sub{j}" if j
                                                  else "", test="ks", details=details)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=26)
    ap.add_argument("--per-key", type=int, default=4, help="findings per key (4)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--against", metavar="FILE.py", help="another findings module to time")
    args = ap.parse_args()
    modules = against(findings, args.against)
    data = rows(args.slices, args.per_key)
    admin = os.environ.get("VITMON_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    name = "benchfind" + uuid.uuid4().hex[:6]
    url = create_database(admin, name)
    runs = {k: {"insert": [], "update": []} for k in modules}
    try:
        migrate.upgrade(url)
        engine = make_engine(url)
        for r in range(args.rounds):
            order = list(modules.items())
            for label, module in order if r % 2 == 0 else order[::-1]:
                with engine.connect() as conn:
                    tx = conn.begin()
                    for step in ("insert", "update"):
                        wall, cpu = time.perf_counter(), time.process_time()
                        module.upsert_findings(conn, data)
                        runs[label][step].append((time.perf_counter() - wall,
                                                  time.process_time() - cpu))
                    revision = conn.exec_driver_sql("SELECT max(revision) FROM findings"
                                                    ).scalar_one()
                    assert revision == 2, revision
                    tx.rollback()
        engine.dispose()
    finally:
        drop_database(admin, name)
    print(f"load average {os.getloadavg()[0]:.1f}; {len(data)} findings, median of {args.rounds}")
    print(f"{'module':<8} {'step':<7} {'CPU ms':>8} {'min':>8} {'wall ms':>8}")
    for label, steps in runs.items():
        for step, r in steps.items():
            cpu = [x[1] * 1e3 for x in r]
            print(f"{label:<8} {step:<7} {statistics.median(cpu):8.1f} {min(cpu):8.1f} "
                  f"{statistics.median(x[0] for x in r) * 1e3:8.1f}")


if __name__ == "__main__":
    main()
