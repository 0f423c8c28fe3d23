"""The simulator publishes to the real embedded broker with each client: what --out writes."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from monitor.core.ingest.jsonl import read_messages
from monitor.devstack.broker import EmbeddedBroker
from simulator.cli import add_arguments, run

ARGS = ["--scenario", "bad-input", "--rate", "20", "--duration", "90", "--seed", "9",
        "--start", "2026-11-01T00:00:00Z", "--no-progress"]


def simulate(*extra: str) -> int:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args([*ARGS, *extra]))


def read_topic(bootstrap: str, topic: str, expected: int) -> tuple[list[bytes], Counter[int]]:
    """Every message of ``topic`` (explicit assignment of all partitions, from offset 0)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}",
                         "enable.auto.commit": False, "fetch.message.max.bytes": 8 * 2**20})
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        values: list[bytes] = []
        per_partition: Counter[int] = Counter()
        deadline = time.monotonic() + 60
        while len(values) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                assert message.error() is None, message.error()
                values.append(message.value())
                per_partition[message.partition()] += 1
        return values, per_partition
    finally:
        consumer.close()


@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python"])
def test_publishes_the_same_stream_to_the_broker(client: str, broker: EmbeddedBroker,
                                                 topic_names: Callable[..., str],
                                                 tmp_path: Path) -> None:
    pred, labels = topic_names("vit.predictions"), topic_names("vit.labels")
    manifest_path = tmp_path / "manifest.json"
    assert simulate("--bootstrap", broker.bootstrap, "--client", client, "--partitions", "2",
                    "--predictions-topic", pred, "--labels-topic", labels,
                    "--speedup", "1000", "--manifest", str(manifest_path)) == 0
    assert simulate("--out", str(tmp_path / "same.jsonl")) == 0
    expected = Counter((t, v) for t, _, v in read_messages(tmp_path / "same.jsonl"))
    manifest = orjson.loads(manifest_path.read_bytes())
    counts = manifest["counts"]["messages"]
    got_pred, parts = read_topic(broker.bootstrap, pred, counts["predictions_topic"])
    got_labels, _ = read_topic(broker.bootstrap, labels, counts["labels_topic"])
    assert len(got_pred) == counts["predictions_topic"]
    assert len(got_labels) == counts["labels_topic"]
    assert set(parts) <= {0, 1}  # the simulator created the topic with --partitions 2
    got = Counter([("vit.predictions", v) for v in got_pred]
                  + [("vit.labels", v) for v in got_labels])
    assert got == expected  # byte-identical to the file, oversized messages included
    assert manifest["sink"]["client"] == client and manifest["counts"]["malformed"]["total"] > 0
