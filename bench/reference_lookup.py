"""The checkpoint's cached reference lookup when its entry expires (every ``ttl_checkpoints``),
on the reference ``bench/ingest.py`` captures (20,000 events, 26 slices, 768-d embeddings),
stored in a fresh database of the local PostgreSQL (``VITMON_DATABASE_URL`` or
127.0.0.1:5432): wall and client-CPU milliseconds per expiry, and whether the same object came
back (detectors' memos on its profile stay warm). ``--against FILE.py`` times another copy of
``monitor.store.references`` (e.g. ``git show 18afa5e:monitor/store/references.py >
/tmp/old.py``) in alternation, so both share the load.

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/reference_lookup.py --against /tmp/old.py
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import ATTRS, REFERENCE_EVENTS, admin_url, make_events  # noqa: E402

from monitor.app.config import load_settings  # noqa: E402
from monitor.reports.reference_capture import capture  # noqa: E402
from monitor.store import migrate, references  # noqa: E402
from monitor.store.db import create_database, drop_database, make_engine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--against", metavar="FILE.py", help="another references module to time")
    args = ap.parse_args()
    modules = {"this": references}
    if args.against:
        spec = importlib.util.spec_from_file_location("references_against", args.against)
        modules["against"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(modules["against"])
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ref_file = tmp / "reference.jsonl"
        ref_file.write_bytes(b"\n".join(make_events(REFERENCE_EVENTS, 2, 768, 10, 3_600_000,
                                                    "ref")) + b"\n")
        settings = load_settings(env={**os.environ, "VITMON_SLICES__ATTRIBUTES":
                                      "[" + ",".join(ATTRS) + "]"})
        captured = capture(settings, "vit-bench", "1.0", file=ref_file)
        admin = admin_url(tmp)
        name = f"bench_ref_{uuid.uuid4().hex[:8]}"
        url = create_database(admin, name)
        try:
            migrate.upgrade(url)
            engine = make_engine(url)
            with engine.begin() as conn:
                references.store(conn, "vit-bench", "1.0", captured.profile, "bench", 20_000, {})
                size = conn.exec_driver_sql("SELECT octet_length(profile) FROM "
                                            "reference_profiles").scalar_one()
            print(f"profile: {len(captured.profile['slices'])} slices, {size:,} B stored (zlib)")
            lookups = {k: m.CachedReferenceLookup({}, ttl_checkpoints=1) for k, m in modules.items()}
            times: dict[str, list[tuple[float, float]]] = {k: [] for k in modules}
            same = dict.fromkeys(modules, 0)
            with engine.connect() as conn:
                first = {k: lookup(conn, "vit-bench", "1.0") for k, lookup in lookups.items()}
                for _ in range(args.rounds):
                    for k, lookup in lookups.items():
                        lookup.tick()  # expired
                        w, c = time.perf_counter(), time.process_time()
                        ref = lookup(conn, "vit-bench", "1.0")
                        times[k].append((time.perf_counter() - w, time.process_time() - c))
                        same[k] += ref is first[k]
            engine.dispose()
        finally:
            drop_database(admin, name)
    for k, t in times.items():
        wall, cpu = (np.median([x[i] for x in t]) * 1e3 for i in (0, 1))
        print(f"{k:8s} per expiry: wall {wall:8.2f} ms, client CPU {cpu:8.2f} ms (median of "
              f"{len(t)}); same object {same[k]} of {len(t)}")


if __name__ == "__main__":
    main()
