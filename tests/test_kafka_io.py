"""Both Kafka clients against the real embedded broker: same behaviour through one interface."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from monitor.core import kafka as kafka_io
from monitor.core.kafka import CLIENTS, KafkaIOError, Record
from monitor.devstack.broker import EmbeddedBroker
from monitor.devstack.processes import free_port
from monitor.errors import ConfigError

N = 300
PARTITIONS = 3


def read_until(source: kafka_io.Source, count: int, timeout_s: float = 30) -> list[Record]:
    """Poll until ``count`` records arrived, then once more to catch any extra (duplicates)."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        records += source.poll(1000, 0.2)
    records += source.poll(1000, 0.5)
    return records


def produce_keyed(client: str, bootstrap: str, topic: str, n: int = N) -> None:
    """``n`` messages: value ``m<i>``, key ``k<i % 7>``, header ``seq=<i>``."""
    sink = kafka_io.make_sink(client, bootstrap)
    try:
        for i in range(n):
            sink.produce(topic, f"m{i}".encode(), key=f"k{i % 7}".encode(),
                         headers=[("seq", str(i).encode())])
        sink.flush(30)
    finally:
        sink.close()


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def topic(client: str, broker: EmbeddedBroker, topic_names) -> str:
    name = topic_names("vit.predictions")
    kafka_io.create_topics(client, broker.bootstrap, {name: PARTITIONS})
    return name


def test_create_topics_is_idempotent_and_partitions_come_from_metadata(client, broker, topic):
    kafka_io.create_topics(client, broker.bootstrap, {topic: PARTITIONS})  # exists: fine
    assert kafka_io.partitions_for(client, broker.bootstrap, topic) == [0, 1, 2]


def test_missing_topic_has_no_partitions_and_is_not_auto_created(client, broker, topic_names):
    name = topic_names("never.created")
    assert kafka_io.partitions_for(client, broker.bootstrap, name) == []
    assert kafka_io.partitions_for(client, broker.bootstrap, name) == []


def test_round_trip_exactly_once_in_partition_order(client, broker, topic):
    produce_keyed(client, broker.bootstrap, topic)
    source = kafka_io.make_source(client, broker.bootstrap)
    try:
        parts = source.partitions_for(topic)
        source.assign({(topic, p): 0 for p in parts})
        records = read_until(source, N)
        ends = source.end_offsets([(topic, p) for p in parts])
    finally:
        source.close()

    assert sorted(int(r.value[1:]) for r in records) == list(range(N))  # all, none twice
    by_partition: dict[int, list[Record]] = defaultdict(list)
    for r in records:
        assert r.topic == topic and r.timestamp_ms > 0
        assert r.headers == (("seq", r.value[1:]),)
        by_partition[r.partition].append(r)
    for p, recs in by_partition.items():
        assert [r.offset for r in recs] == list(range(len(recs)))  # in order, no gaps
        seqs = [int(r.value[1:]) for r in recs]
        assert seqs == sorted(seqs)  # a key's messages keep their order
        assert ends[(topic, p)] == len(recs)
    partitions_of_key = defaultdict(set)
    for r in records:
        partitions_of_key[r.key].add(r.partition)
    assert all(len(ps) == 1 for ps in partitions_of_key.values())  # keyed partitioning


def test_assign_from_mid_offset_reads_the_rest(client, broker, topic):
    produce_keyed(client, broker.bootstrap, topic)
    source = kafka_io.make_source(client, broker.bootstrap)
    try:
        tps = [(topic, p) for p in source.partitions_for(topic)]
        ends = source.end_offsets(tps)  # a fresh source: no fetch has happened yet
        assert sum(ends.values()) == N
        start = {tp: end // 2 for tp, end in ends.items()}
        source.assign(start)
        records = read_until(source, N - sum(start.values()))
    finally:
        source.close()
    got: dict[tuple[str, int], list[int]] = defaultdict(list)
    for r in records:
        got[(r.topic, r.partition)].append(r.offset)
    assert got == {tp: list(range(start[tp], ends[tp])) for tp in tps if ends[tp] > start[tp]}


def test_reassign_replaces_the_assignment(client, broker, topic):
    produce_keyed(client, broker.bootstrap, topic, n=30)
    source = kafka_io.make_source(client, broker.bootstrap)
    try:
        tps = [(topic, p) for p in source.partitions_for(topic)]
        ends = source.end_offsets(tps)
        source.assign({tp: 0 for tp in tps})
        assert len(read_until(source, 30)) == 30
        only = max(tps, key=lambda tp: ends[tp])
        source.assign({only: 0})
        again = read_until(source, ends[only])
    finally:
        source.close()
    assert {(r.topic, r.partition) for r in again} == {only}
    assert [r.offset for r in again] == list(range(ends[only]))


def test_message_above_one_mib_round_trips(client, broker, topic):
    big = bytes(range(256)) * (int(1.1 * (1 << 20)) // 256)
    sink = kafka_io.make_sink(client, broker.bootstrap)
    sink.produce(topic, big, key=b"big")
    sink.produce(topic, b"after", key=b"big")
    sink.flush(30)
    sink.close()
    source = kafka_io.make_source(client, broker.bootstrap)
    try:
        source.assign({(topic, p): 0 for p in source.partitions_for(topic)})
        records = read_until(source, 2)
    finally:
        source.close()
    assert [r.value for r in records] == [big, b"after"]


def test_message_over_the_client_limit_raises(client, broker, topic):
    sink = kafka_io.make_sink(client, broker.bootstrap)
    try:
        with pytest.raises(KafkaIOError, match=topic):
            sink.produce(topic, b"x" * (kafka_io.CLIENT_MAX_MESSAGE_BYTES + 1))
    finally:
        sink.close()


def test_clients_agree_on_key_to_partition(broker, topic_names):
    """Producers of either client put a key on the same partition (murmur2, as Java does)."""
    placement = {}
    for client in CLIENTS:
        name = topic_names("keys")
        kafka_io.create_topics(client, broker.bootstrap, {name: PARTITIONS})
        produce_keyed(client, broker.bootstrap, name, n=21)
        other = CLIENTS[1 - CLIENTS.index(client)]  # read with the other client
        source = kafka_io.make_source(other, broker.bootstrap)
        try:
            source.assign({(name, p): 0 for p in range(PARTITIONS)})
            placement[client] = {r.key: r.partition for r in read_until(source, 21)}
        finally:
            source.close()
    assert len(placement["kafka-python"]) == 7
    assert placement["kafka-python"] == placement["confluent-kafka"]


def test_flush_raises_when_nothing_can_be_delivered():
    sink = kafka_io.make_sink("confluent-kafka", f"127.0.0.1:{free_port()}")
    sink.produce("nowhere", b"x")
    with pytest.raises(KafkaIOError, match="undelivered"):
        sink.flush(timeout_s=1)


@pytest.mark.parametrize("factory", [kafka_io.make_source, kafka_io.make_sink])
def test_unknown_client_is_a_config_error(factory):
    with pytest.raises(ConfigError) as info:
        factory("kafka-java", "127.0.0.1:9")
    assert info.value.setting == "kafka.client"
    assert "kafka-java" in str(info.value) and "confluent-kafka" in str(info.value)


def test_unknown_client_is_a_config_error_for_admin_calls():
    with pytest.raises(ConfigError):
        kafka_io.create_topics("kafka-java", "127.0.0.1:9", {"t": 1})
    with pytest.raises(ConfigError):
        kafka_io.partitions_for("kafka-java", "127.0.0.1:9", "t")


class _FailingClaim:
    """A Rebalance listener whose claim fails (e.g. PostgreSQL refused it)."""

    def assigned(self, tps):
        raise RuntimeError("claim failed")

    def revoked(self, tps):
        pass

    def lost(self, tps):
        pass


def test_a_failing_claim_reaches_the_caller_of_poll(client, broker, topic):
    """kafka-python catches and logs what a rebalance listener raises: the partitions stayed
    assigned but unclaimed, and their records were skipped without a word. Both clients now
    raise it from poll."""
    group = kafka_io.Group(f"g-{topic}", session_timeout_s=6, heartbeat_interval_s=1,
                           max_poll_interval_s=10)
    source = kafka_io.make_source(client, broker.bootstrap, group=group)
    try:
        source.subscribe([topic], _FailingClaim())
        deadline = time.monotonic() + 60
        with pytest.raises(RuntimeError, match="claim failed"):
            while time.monotonic() < deadline:
                source.poll(100, 0.5)
    finally:
        source.close()
