"""Benchmark: produce then consume N messages of ~2 KB with each Kafka client.

Runs against a fresh embedded Tansu broker per client (memory storage; a fresh broker keeps
one client's data from slowing the other), through vitmon's own :mod:`monitor.core.kafka`, so
the figures are what the monitor gets. Messages are realistic prediction events (JSON with a
base64 f16 embedding) padded to the target size.

    .venv/bin/python bench/kafka_clients.py --messages 200000 --size 2048

Extra client settings can be compared with ``--set key=value`` (confluent-kafka spelling for
confluent, e.g. ``--set compression.type=lz4``; applied to the producer only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from monitor.core import kafka as kafka_io
from monitor.core.ingest.events import embedding_to_b64, encode_prediction
from monitor.devstack.broker import EmbeddedBroker


def make_messages(n_distinct: int, size: int, seed: int = 0) -> list[bytes]:
    """``n_distinct`` prediction events of about ``size`` bytes (cycled by the producer)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_distinct):
        emb, dtype = embedding_to_b64(rng.standard_normal(384).astype(np.float32))
        event = {"event_id": f"bench-{i}", "ts": 1_700_000_000_000 + i, "model": "vit-b16-retail",
                 "model_version": "2026.11.3", "latency_ms": float(rng.gamma(4, 5)),
                 "status": "ok", "pred": int(rng.integers(10)),
                 "probs": rng.dirichlet(np.ones(10)).round(5), "embedding_b64": emb,
                 "embedding_dtype": dtype, "attrs": {"camera_id": f"cam-{i % 50}"}}
        raw = encode_prediction(event)
        pad = max(0, size - len(raw) - len(',"pad":""'))
        out.append(raw[:-1] + b',"pad":"' + b"x" * pad + b'"}')
    return out


def bench_client(client: str, n: int, size: int, partitions: int,
                 producer_conf: dict[str, str]) -> tuple[float, float]:
    """(produce msgs/s, consume msgs/s) for one client on its own fresh broker."""
    messages = make_messages(1000, size)
    keys = [f"v{i % 4}".encode() for i in range(16)]
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(log_dir=Path(tmp)) as broker:
        topic = "bench.vit.predictions"
        kafka_io.create_topics(client, broker.bootstrap, {topic: partitions})
        sink = kafka_io.make_sink(client, broker.bootstrap, producer_conf or None)
        t0 = time.perf_counter()
        for i in range(n):
            sink.produce(topic, messages[i % len(messages)], key=keys[i % len(keys)])
        sink.flush(120)
        produce_s = time.perf_counter() - t0
        sink.close()

        source = kafka_io.make_source(client, broker.bootstrap)
        parts = source.partitions_for(topic)
        source.assign({(topic, p): 0 for p in parts})
        got, nbytes = 0, 0
        t0 = time.perf_counter()
        while got < n and time.perf_counter() - t0 < 600:
            batch = source.poll(20_000, 0.5)
            got += len(batch)
            nbytes += sum(len(r.value or b"") for r in batch)
        consume_s = time.perf_counter() - t0
        source.close()
    if got != n:
        raise SystemExit(f"{client}: consumed {got} of {n}")
    return n / produce_s, n / consume_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--clients", default=",".join(kafka_io.CLIENTS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    producer_conf = dict(kv.split("=", 1) for kv in args.set)
    print(f"{args.messages} messages of {args.size} B, {args.partitions} partitions"
          + (f", producer {producer_conf}" if producer_conf else ""))
    for client in args.clients.split(","):
        produce, consume = bench_client(client, args.messages, args.size, args.partitions,
                                        producer_conf)
        mib = args.size / (1 << 20)
        print(f"{client:16s} produce {produce:10,.0f} msgs/s ({produce * mib:6.1f} MiB/s)   "
              f"consume {consume:10,.0f} msgs/s ({consume * mib:6.1f} MiB/s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
