"""The checkpoint's cached reference lookup each time its entry expires (``ttl_checkpoints``),
on the reference ``bench/ingest.py`` captures (20,000 events, 26 slices, 768-d embeddings) in a
fresh database: wall and client-CPU ms per expiry, and whether the same object came back (so
detectors' memos on its profile stay warm); and a first load of the reference (the row as that
module's ``store`` writes it, fetched and decoded by its ``_load``). ``--against FILE.py`` times
another copy of ``monitor.store.references`` in alternation (e.g. ``git show
18afa5e:monitor/store/references.py > /tmp/old.py``), so both share the machine's load;
``--codec FILE.py`` likewise times a first load's decoding (``decode_value`` of the stored
profile) with another copy of ``monitor.codec``.

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/reference_lookup.py --against /tmp/old.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import ATTRS, REFERENCE_EVENTS, admin_url, against, make_events  # noqa: E402

from monitor import codec  # noqa: E402
from monitor.app.config import load_settings  # noqa: E402
from monitor.reports.reference_capture import capture  # noqa: E402
from monitor.store import migrate, references  # noqa: E402
from monitor.store.db import create_database, drop_database, make_engine  # noqa: E402


def timed_expiries(engine, modules: dict, rounds: int) -> dict[str, list[tuple[float, float, bool]]]:
    """Per module: (wall s, CPU s, same object as the first lookup) for each expired lookup."""
    lookups = {k: m.CachedReferenceLookup({}, ttl_checkpoints=1) for k, m in modules.items()}
    out: dict[str, list[tuple[float, float, bool]]] = {k: [] for k in modules}
    with engine.connect() as conn:
        first = {k: lookup(conn, "vit-bench", "1.0") for k, lookup in lookups.items()}
        for _ in range(rounds):
            for k, lookup in lookups.items():
                lookup.tick()
                wall, cpu = time.perf_counter(), time.process_time()
                ref = lookup(conn, "vit-bench", "1.0")
                out[k].append((time.perf_counter() - wall, time.process_time() - cpu,
                               ref is first[k]))
    return out


def timed_first_loads(engine, profile, modules: dict, rounds: int
                      ) -> dict[str, tuple[int, list[tuple[float, float]]]]:
    """Per module: bytes its ``store`` wrote, and (wall s, CPU s) of its ``_load`` of that row."""
    with engine.begin() as conn:
        ids = {k: m.store(conn, "vit-bench", "1.0", profile, "bench", 20_000, {}, activate=False)
               for k, m in modules.items()}
        size = {k: conn.exec_driver_sql(f"SELECT length(profile) FROM reference_profiles "
                                        f"WHERE id = {i}").scalar_one() for k, i in ids.items()}
    out: dict[str, list[tuple[float, float]]] = {k: [] for k in modules}
    with engine.connect() as conn:
        for _ in range(rounds):
            for k, m in modules.items():
                wall, cpu = time.perf_counter(), time.process_time()
                m._load(conn, ids[k])
                out[k].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {k: (size[k], out[k]) for k in modules}


def timed_decodes(profile, modules: dict, rounds: int) -> dict[str, list[float]]:
    """Per codec module: CPU s of ``decode_value`` of the profile's JSON, each round."""
    raw = codec.encode_value(profile)
    out: dict[str, list[float]] = {k: [] for k in modules}
    for _ in range(rounds):
        for k, m in modules.items():
            cpu = time.process_time()
            m.decode_value(raw)
            out[k].append(time.process_time() - cpu)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--against", metavar="FILE.py", help="another references module to time")
    ap.add_argument("--codec", metavar="FILE.py", help="another codec module to time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        ref_file = Path(d) / "reference.jsonl"
        ref_file.write_bytes(b"\n".join(make_events(REFERENCE_EVENTS, 2, 768, 10, 3_600_000,
                                                    "ref")) + b"\n")
        settings = load_settings(env={"VITMON_SLICES__ATTRIBUTES": "[" + ",".join(ATTRS) + "]"})
        captured = capture(settings, "vit-bench", "1.0", file=ref_file)
        admin = admin_url(Path(d))
        name = f"benchref{Path(d).name[-6:].lower()}"
        url = create_database(admin, name)
        try:
            migrate.upgrade(url)
            engine = make_engine(url)
            modules = against(references, args.against)
            with engine.begin() as conn:  # the first module's format: ``this`` reads older ones
                next(iter(modules.values())).store(conn, "vit-bench", "1.0", captured.profile,
                                                   "bench", 20_000, {})
            runs = timed_expiries(engine, modules, args.rounds)
            loads = timed_first_loads(engine, captured.profile, modules, args.rounds)
            engine.dispose()
            decodes = timed_decodes(captured.profile, against(codec, args.codec), args.rounds)
        finally:
            drop_database(admin, name)
    print(f"reference: {len(captured.profile['slices'])} slice sub-profiles")
    for k, (size, r) in loads.items():
        wall, cpu = (statistics.median(x[i] for x in r) * 1e3 for i in (0, 1))
        print(f"{k:8s} first load: wall {wall:9.2f} ms, client CPU {cpu:9.2f} ms (median of "
              f"{len(r)}), {size:,} B stored")
    for k, r in runs.items():
        wall, cpu = (statistics.median(x[i] for x in r) * 1e3 for i in (0, 1))
        print(f"{k:8s} per expiry: wall {wall:9.2f} ms, client CPU {cpu:9.2f} ms (median of "
              f"{len(r)}); the same object {sum(x[2] for x in r)} of {len(r)} times")
    for k, r in decodes.items():
        print(f"{k:8s} codec: decode_value {statistics.median(r) * 1e3:9.2f} ms CPU (median of "
              f"{len(r)})")


if __name__ == "__main__":
    main()
