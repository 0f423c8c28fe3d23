"""Kafka, one small interface over both clients: ``kafka-python`` and ``confluent-kafka``.

The monitor owns its offsets: they are committed to PostgreSQL in the same transaction as the
results they produced (exactly-once effect). A :class:`Source` either is assigned explicit
partitions at explicit offsets, or subscribes in a consumer :class:`Group`, whose coordinator
shares the partitions among the group's processes; a :class:`Rebalance` listener then supplies
the offsets (from PostgreSQL) on every assignment. Commits to the Kafka group are a best-effort
mirror for lag tools, never read back. Sources never auto-create topics. Brokers that
auto-create topics on first use (Tansu does, with its own partition count) are handled by
creating topics explicitly with :func:`create_topics` and always reading partition lists from
cluster metadata.

Size limits: the monitor rejects messages over 1 MiB as "oversized", so it must be able to
*read* them first. Producers and consumers here accept up to :data:`CLIENT_MAX_MESSAGE_BYTES`.

The client libraries are imported lazily, so using one does not pay for importing the other.

Modules: :mod:`.base` (interfaces, limits, exact end offsets), :mod:`.confluent` and
:mod:`.kafka_python` (one per client library), :mod:`.admin` (clients by name, topics). This
package may import ``monitor.core.ingest`` (the record type), ``monitor.errors`` and the client
libraries; the rest of vitmon uses the names below.
"""

from monitor.core.ingest.records import Record
from monitor.core.kafka.admin import create_topics, make_sink, make_source, partitions_for
from monitor.core.kafka.base import (
    CLIENT_MAX_MESSAGE_BYTES,
    CLIENTS,
    CONFLUENT,
    KAFKA_PYTHON,
    Group,
    KafkaIOError,
    Rebalance,
    Sink,
    Source,
)

__all__ = ["CLIENT_MAX_MESSAGE_BYTES", "CLIENTS", "CONFLUENT", "Group", "KAFKA_PYTHON", "KafkaIOError",
           "Rebalance",
           "Record", "Sink", "Source", "create_topics", "make_sink", "make_source", "partitions_for"]
