"""Scale-out benchmark (a benchmark, not a test): 1, 2 and 3 `vitmon run` processes in one
consumer group on a 6-partition topic, events/s of each and of the group together, plus the
PostgreSQL cost per event and the state per key for the capacity model in docs/scaling.md.

Per run: a fresh topic pair (6 partitions each), the same N events produced once per run, a fresh
database, N processes started together with ``--exit-when-idle``. A process's rate is the events
its checkpoints accepted over its first assignment to its last commit; the group's is all events
over the earliest assignment to the latest commit (start-up and the first group join excluded,
as in bench/ingest.py). Rebalances while members join are included: they are part of the cost.

    .venv/bin/python bench/groups.py [--events 60000] [--client confluent-kafka]
        [--processes 1,2,3] [--detectors traffic,feature_drift,prediction_drift]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import COMMIT, STARTED, admin_url  # noqa: E402

from monitor.core import kafka as kafka_io  # noqa: E402
from monitor.devstack.broker import EmbeddedBroker  # noqa: E402
from monitor.devstack.synthetic import synthetic_stream  # noqa: E402
from monitor.store import footprint  # noqa: E402
from monitor.store.db import create_database, make_engine  # noqa: E402

PARTITIONS = 6
# the embedded broker holds a JoinGroup for the max poll interval: seconds here (docs/scaling.md)
GROUP = {"VITMON_KAFKA__SESSION_TIMEOUT_S": "6", "VITMON_KAFKA__HEARTBEAT_INTERVAL_S": "1",
         "VITMON_KAFKA__MAX_POLL_INTERVAL_S": "20"}


def run_group(n: int, client: str, bootstrap: str, messages, admin: str, tmp: Path,
              detectors: str) -> dict | None:
    base = f"bgrp{uuid.uuid4().hex[:6]}"
    kafka_io.create_topics(client, bootstrap, {f"{base}.pred": PARTITIONS,
                                               f"{base}.labels": PARTITIONS, f"{base}.dlq": 1})
    sink = kafka_io.make_sink(client, bootstrap)
    for key, value in messages:
        sink.produce(f"{base}.pred", value, key=key)
    sink.flush(120)
    sink.close()
    db = create_database(admin, base)
    env = {**os.environ, "VITMON_KAFKA_BOOTSTRAP": bootstrap, "VITMON_DATABASE_URL": db,
           "VITMON_KAFKA_CLIENT": client, "VITMON_METRICS_PORT": "0",
           "VITMON_KAFKA__GROUP": base, "VITMON_KAFKA__PREDICTIONS_TOPIC": f"{base}.pred",
           "VITMON_KAFKA__LABELS_TOPIC": f"{base}.labels", "VITMON_KAFKA__DLQ_TOPIC": f"{base}.dlq",
           "VITMON_SLICES__ATTRIBUTES": "[a0,a1,a2,a3]", "VITMON_DETECTORS": detectors,
           "VITMON_CHECKPOINT__MAX_EVENTS": "5000", **GROUP}
    vitmon = str(Path(sys.executable).with_name("vitmon"))
    subprocess.run([vitmon, "db", "upgrade"], env=env, check=True, capture_output=True)
    logs = [tmp / f"{base}-{i}.log" for i in range(n)]
    procs = [subprocess.Popen([vitmon, "run", "--exit-when-idle", "8"], env=env,
                              stdout=log.open("w"), stderr=subprocess.STDOUT) for log in logs]
    for p, log in zip(procs, logs):
        if p.wait(1800) != 0:
            raise SystemExit(f"vitmon run failed: {log.read_text()[-2000:]}")
    each = []
    for log in logs:
        # every commit counts (the first ones may accept 0: events parked until the intake
        # decides their version's embedding dimension, then accepted by whichever process)
        text = log.read_text()
        commits = [(datetime.fromisoformat(t), int(a)) for t, a in COMMIT.findall(text)]
        started = [datetime.fromisoformat(t) for t in STARTED.findall(text)]
        # from its first assignment (start-up and the group join done) to its last commit
        first = started[0] if started else (commits[0][0] if commits else None)
        last = commits[-1][0] if commits else None
        span = (last - first).total_seconds() if first and last else 0
        each.append((sum(a for _, a in commits), span, first, last))
    total = sum(e for e, *_ in each)
    firsts = [f for _, _, f, _ in each if f]
    lasts = [la for *_, la in each if la]
    if not lasts:
        print(f"{n} process(es): no checkpoint committed; logs: {logs}", flush=True)
        return None
    together = (max(lasts) - min(firsts)).total_seconds()
    return {"n": n, "each": [(e, e / s if s else float("nan")) for e, s, *_ in each],
            "events": total, "together_eps": total / together, "db": _footprint(db)}


def _footprint(db: str) -> dict:
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            tables = footprint.tables(conn)
            state = footprint.state_sizes(conn)
    finally:
        engine.dispose()
    n = max(tables["predictions"][0], 1)
    return {"events": n, "bytes_per_event": sum(b for _, b in tables.values()) / n,
            "rows_per_event": sum(r for r, _ in tables.values()) / n,
            "state_avg_b": state["avg_bytes"], "state_max_b": state["max_bytes"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--client", default="confluent-kafka")
    ap.add_argument("--processes", default="1,2,3")
    ap.add_argument("--detectors", default="traffic,feature_drift,prediction_drift")
    args = ap.parse_args()
    messages, _, _ = synthetic_stream(args.events, seed=2, malformed_fraction=0.0,
                                      duplicate_fraction=0.0, dim=64, n_attrs=4,
                                      n_windows=12, window_ms=300_000)
    with tempfile.TemporaryDirectory() as d, EmbeddedBroker() as broker:
        tmp = Path(os.environ.get("BENCH_LOG_DIR") or d)
        admin = admin_url(tmp)
        print(f"{args.events} events, {PARTITIONS} partitions, client {args.client}, "
              f"detectors {args.detectors}, {os.cpu_count()} CPUs", flush=True)
        for n in (int(x) for x in args.processes.split(",")):
            t0 = time.perf_counter()
            r = run_group(n, args.client, broker.bootstrap, messages, admin, tmp, args.detectors)
            if r is None:
                continue
            each = ", ".join(f"{e:,} ev at {eps:,.0f}/s" for e, eps in r["each"])
            f = r["db"]
            print(f"{n} process(es): together {r['together_eps']:,.0f} events/s "
                  f"({r['events']:,} events; each: {each}); wall {time.perf_counter() - t0:.0f} s; "
                  f"PostgreSQL {f['bytes_per_event']:,.0f} B and {f['rows_per_event']:.2f} rows "
                  f"per event; state per key avg {f['state_avg_b']:,.0f} B, "
                  f"max {f['state_max_b']:,} B", flush=True)


if __name__ == "__main__":
    main()
