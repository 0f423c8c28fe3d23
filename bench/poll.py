"""Poll cost on the consumer's thread: CPU microseconds per message of ``Source.poll`` (the
client's consume call plus one :class:`~monitor.core.ingest.records.Record` per message), on
``bench/ingest.py``'s events (~2.5 kB) read from the embedded Tansu broker.

Each round reads the whole topic again with a new source, polls of ``--poll``; timed: the
polling thread's CPU (``time.thread_time``: what holds the interpreter, not librdkafka's
fetch threads) and the process's CPU, summed over the poll calls only. The records of a round
are kept until its end, as the consumer keeps a buffer's until its checkpoint (the garbage
collector's passes over them are part of the cost). To compare two trees,
serve one topic and run each tree against it in turn (A B A B ...)::

    nice -n 10 .venv/bin/python bench/poll.py --serve &   # prints the bootstrap and topic
    PYTHONPATH=/other/tree nice -n 10 .venv/bin/python bench/poll.py --bootstrap B --topic T
    PYTHONPATH=. nice -n 10 .venv/bin/python bench/poll.py --bootstrap B --topic T
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import make_events  # noqa: E402

from monitor.app.service import tune_collector  # noqa: E402
from monitor.core import kafka  # noqa: E402
from monitor.devstack.broker import EmbeddedBroker  # noqa: E402

PARTITIONS = 3


def _produce(client: str, bootstrap: str, n: int) -> str:
    topic = f"bench{uuid.uuid4().hex[:6]}.pred"
    kafka.create_topics(client, bootstrap, {topic: PARTITIONS})
    sink = kafka.make_sink(client, bootstrap)
    for lo in range(0, n, 10_000):
        for value in make_events(min(10_000, n - lo), 1 + lo, 768, 10, 3_600_000, f"ev{lo}"):
            sink.produce(topic, value)
    sink.flush(300)
    sink.close()
    return topic


def _round(client: str, bootstrap: str, topic: str, n: int, poll: int) -> tuple[float, float]:
    """Thread and process CPU seconds spent in ``poll`` to read the topic's ``n`` messages."""
    source = kafka.make_source(client, bootstrap)
    try:
        source.assign({(topic, p): 0 for p in range(PARTITIONS)})
        time.sleep(1)  # a backlog, as bench/ingest.py's: the client has prefetched, polls are full
        got = thread = proc = 0.0
        kept = []  # the records stay alive, as in the consumer's buffer until its checkpoint
        deadline = time.monotonic() + 120
        while got < n and time.monotonic() < deadline:
            t, c = time.thread_time(), time.process_time()
            records = source.poll(poll, 0.5)
            thread += time.thread_time() - t
            proc += time.process_time() - c
            got += len(records)
            kept.append(records)
        assert got == n, f"read {got} of {n} messages"
        return thread, proc
    finally:
        source.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--poll", type=int, default=20_000, help="kafka.poll_max_records")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--client", default=kafka.CONFLUENT, choices=kafka.CLIENTS)
    ap.add_argument("--bootstrap", help="a broker holding --topic (else one is started)")
    ap.add_argument("--topic", help="a topic of --events messages on --bootstrap")
    ap.add_argument("--serve", action="store_true",
                    help="start a broker, produce a topic, print both and wait")
    args = ap.parse_args()
    if args.bootstrap and args.topic:
        _measure(args, args.bootstrap, args.topic)
        return
    with EmbeddedBroker() as broker:
        topic = _produce(args.client, broker.bootstrap, args.events)
        if args.serve:
            print(f"--bootstrap {broker.bootstrap} --topic {topic}", flush=True)
            while True:
                time.sleep(60)
        _measure(args, broker.bootstrap, topic)


def _measure(args: argparse.Namespace, bootstrap: str, topic: str) -> None:
    tune_collector()  # the consumer's collector settings
    threads, procs = [], []
    for _ in range(args.rounds):
        thread, proc = _round(args.client, bootstrap, topic, args.events, args.poll)
        threads.append(thread / args.events * 1e6)
        procs.append(proc / args.events * 1e6)
    threads.sort()
    procs.sort()
    print(f"load average {os.getloadavg()[0]:.1f}; {args.events:,} messages, {args.client}, "
          f"polls of {args.poll:,}, {args.rounds} rounds: polling thread best "
          f"{threads[0]:.2f} median {threads[len(threads) // 2]:.2f}, process best "
          f"{procs[0]:.2f} median {procs[len(procs) // 2]:.2f} CPU us/message")


if __name__ == "__main__":
    main()
