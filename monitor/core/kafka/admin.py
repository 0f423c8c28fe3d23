"""Clients by name (the ``kafka.client`` setting) and topic administration: create topics,
read partition lists from cluster metadata."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from monitor.core.kafka.base import (
    CLIENTS,
    CONFLUENT,
    REQUEST_TIMEOUT_S,
    Group,
    KafkaIOError,
    Sink,
    Source,
)
from monitor.core.kafka.confluent import ConfluentSink, ConfluentSource
from monitor.core.kafka.confluent import create_topics as confluent_create_topics
from monitor.core.kafka.kafka_python import KafkaPythonSink, KafkaPythonSource
from monitor.core.kafka.kafka_python import create_topics as kafka_python_create_topics
from monitor.errors import ConfigError

log = logging.getLogger(__name__)


def _check_client(client: str) -> None:
    if client not in CLIENTS:
        raise ConfigError("kafka.client", f"must be one of {', '.join(map(repr, CLIENTS))}; "
                          f"got {client!r}")


def make_source(client: str, bootstrap: str, config: Mapping[str, Any] | None = None,
                group: Group | None = None) -> Source:
    """A :class:`Source` on the named client library (``kafka.client`` setting).

    ``config`` is merged over vitmon's defaults, in the client library's own spelling
    (``"security.protocol"`` for confluent-kafka, ``security_protocol`` for kafka-python): TLS
    and SASL settings of a production cluster go there. With ``group`` the source can
    :meth:`~Source.subscribe` in that consumer group; without, it only reads what it is
    assigned.
    """
    _check_client(client)
    if client == CONFLUENT:
        return ConfluentSource(bootstrap, config, group)
    return KafkaPythonSource(bootstrap, config, group)


def make_sink(client: str, bootstrap: str, config: Mapping[str, Any] | None = None) -> Sink:
    """A :class:`Sink` on the named client library; ``config`` as for :func:`make_source`."""
    _check_client(client)
    if client == CONFLUENT:
        return ConfluentSink(bootstrap, config)
    return KafkaPythonSink(bootstrap, config)


def create_topics(client: str, bootstrap: str, topics: dict[str, int],
                  config: Mapping[str, Any] | None = None) -> None:
    """Create topics (name -> partitions); an existing topic is left as it is.

    A topic that exists with a different partition count is logged, not altered: the stored
    offsets and partition-keyed state depend on the partitioning it already has.
    """
    _check_client(client)
    if not topics:
        return
    if client == CONFLUENT:
        confluent_create_topics(bootstrap, topics, config)
    else:
        kafka_python_create_topics(bootstrap, topics, config)
    source = make_source(client, bootstrap, config)
    try:
        for name, wanted in topics.items():
            actual = _wait_partitions(source, name)
            if len(actual) != wanted:
                log.warning("topic exists with other partition count topic=%s wanted=%d actual=%d",
                            name, wanted, len(actual))
    finally:
        source.close()


def partitions_for(client: str, bootstrap: str, topic: str,
                   config: Mapping[str, Any] | None = None) -> list[int]:
    """Partition ids of ``topic`` from cluster metadata ([] when it does not exist)."""
    source = make_source(client, bootstrap, config)
    try:
        return source.partitions_for(topic)
    finally:
        source.close()


def _wait_partitions(source: Source, topic: str, timeout_s: float = REQUEST_TIMEOUT_S) -> list[int]:
    """Partitions of a just-created topic, waiting for metadata to catch up."""
    deadline = time.monotonic() + timeout_s
    while True:
        parts = source.partitions_for(topic)
        if parts or time.monotonic() > deadline:
            if not parts:
                raise KafkaIOError(f"topic {topic} missing from metadata after creation")
            return parts
        time.sleep(0.1)
