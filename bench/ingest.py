"""End-to-end ingest benchmark (a benchmark, not a test).

Produces N prediction events with 768-dim float16 embeddings (base64), 20 attributes and 20 slices to
the embedded broker, then runs ``vitmon run --exit-when-idle`` as a subprocess with each Kafka
client and reports sustained events/s (first to last checkpoint commit) and the consumer's peak
RSS. PostgreSQL: ``VITMON_DATABASE_URL`` if reachable, else the local server, else embedded.

    .venv/bin/python bench/ingest.py [--events 200000] [--clients confluent-kafka,kafka-python]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.core import kafka as kafka_io  # noqa: E402
from monitor.devstack.broker import EmbeddedBroker  # noqa: E402
from monitor.devstack.postgres import resolve_database  # noqa: E402
from monitor.devstack.synthetic import synthetic_stream  # noqa: E402
from monitor.store.db import check_database, create_database  # noqa: E402

# 20 slices (+ `all`): 4 sliced attributes with 5 values each; events carry 20 attributes.
SLICED = [f"a{i}" for i in range(4)]
TS = re.compile(r"ts=(\S+)Z .*checkpoint committed accepted=(\d+)")
STARTED = re.compile(r"ts=(\S+)Z .*consumer assigned")


def admin_url(tmp: Path) -> str:
    url = os.environ.get("VITMON_DATABASE_URL")
    if url and check_database(url) is None:
        return url
    url, _ = resolve_database("postgresql://postgres@127.0.0.1:5432/postgres"
                              if check_database("postgresql://postgres@127.0.0.1:5432/postgres")
                              is None else None, tmp / "pg")
    return url


def run_once(client: str, bootstrap: str, messages, admin: str, tmp: Path,
             detectors: str) -> dict:
    base = f"bench{uuid.uuid4().hex[:6]}"
    topics = {f"{base}.pred": 3, f"{base}.labels": 3, f"{base}.dlq": 1}
    kafka_io.create_topics(client, bootstrap, topics)
    sink = kafka_io.make_sink(client, bootstrap)
    t0 = time.perf_counter()
    for key, value in messages:
        sink.produce(f"{base}.pred", value, key=key)
    sink.flush(120)
    sink.close()
    produce_s = time.perf_counter() - t0
    db = create_database(admin, base)
    env = {**os.environ, "VITMON_KAFKA_BOOTSTRAP": bootstrap, "VITMON_DATABASE_URL": db,
           "VITMON_KAFKA_CLIENT": client, "VITMON_METRICS_PORT": "0",
           "VITMON_KAFKA__PREDICTIONS_TOPIC": f"{base}.pred",
           "VITMON_KAFKA__LABELS_TOPIC": f"{base}.labels", "VITMON_KAFKA__DLQ_TOPIC": f"{base}.dlq",
           "VITMON_SLICES__ATTRIBUTES": "[" + ",".join(SLICED) + "]",
           "VITMON_CHECKPOINT__MAX_EVENTS": "20000", "VITMON_CHECKPOINT__INTERVAL_S": "2",
           "VITMON_DETECTORS": detectors,
           # the embedding detector on `all` and one attribute, as the docs recommend
           "VITMON_DETECTORS__SLICE_DIMENSIONS": "{embedding_drift: [a0]}"}
    log = tmp / f"{base}.log"
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("vitmon")), "run",
                                 "--exit-when-idle", "2"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        peak_kb = 0
        while proc.poll() is None:  # VmHWM: the process's own peak resident set
            peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
            time.sleep(0.2)
        rc = proc.returncode
    wall = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"vitmon run failed ({rc}): {log.read_text()[-2000:]}")
    text = log.read_text()
    commits = [(datetime.fromisoformat(m[0]), int(m[1])) for m in TS.findall(text)]
    accepted = sum(n for _, n in commits)
    # From partition assignment (start-up done) to the last commit: decode, slicing, detectors,
    # PostgreSQL writes and offset commits included.
    span = (commits[-1][0] - datetime.fromisoformat(STARTED.findall(text)[0])).total_seconds()
    return {"client": client, "events": accepted, "produce_eps": len(messages) / produce_s,
            "sustained_eps": accepted / span,
            "wall_s": wall, "peak_rss_mb": peak_kb / 1024}


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--clients", default="confluent-kafka,kafka-python")
    ap.add_argument("--detectors", default="traffic",
                    help="VITMON_DETECTORS for the run (default: traffic, i.e. ingest cost)")
    args = ap.parse_args()
    print(f"generating {args.events} events (768-d f16 embeddings, 20 slice attributes)...",
          file=sys.stderr)
    messages, truth, _ = synthetic_stream(args.events, seed=1, malformed_fraction=0.0,
                                          duplicate_fraction=0.0, dim=768, n_attrs=20,
                                          n_windows=12, window_ms=300_000)
    size = sum(len(v) for _, v in messages) / len(messages)
    with tempfile.TemporaryDirectory() as d, EmbeddedBroker() as broker:
        tmp = Path(d)
        admin = admin_url(tmp)
        print(f"{'client':<16} {'events':>8} {'sustained ev/s':>15} {'wall s':>8} "
              f"{'peak RSS MB':>12}   (mean message {size:.0f} B)")
        for client in args.clients.split(","):
            r = run_once(client, broker.bootstrap, messages, admin, tmp, args.detectors)
            print(f"{r['client']:<16} {r['events']:>8} {r['sustained_eps']:>15,.0f} "
                  f"{r['wall_s']:>8.1f} {r['peak_rss_mb']:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
