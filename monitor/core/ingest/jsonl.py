"""The one JSONL format of event files: what ``vitmon simulate --out`` writes and what
``vitmon reference capture --file`` and ``vitmon report drift --reference-file`` read.

Two kinds of line are accepted, mixed freely, one JSON object per line:

* a **message envelope**, as ``vitmon simulate --out`` writes it, keeping topic, key and the
  exact message bytes::

      {"topic": "vit.predictions", "key": "2026.11.1", "value": "{\\"schema\\":...}"}

  ``value_b64`` (base64) replaces ``value`` for a message that is not valid UTF-8 (the
  simulator's malformed messages), so reading gives back byte-identical messages; an event
  object as ``value`` is read as its JSON;
* a **raw event** of event contract v1 (``{"schema": "vit.prediction/v1", ...}`` or
  ``vit.label/v1``), one per line, as a user dumps it from the topic. Its topic follows from its
  schema and its message bytes are the line itself.

Blank lines are skipped. Any other line stops the reading with a :class:`JsonlError` naming the
file and the line number, in one line.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import orjson

from monitor.core.ingest.events import LABEL_SCHEMA, LABELS_TOPIC, PREDICTIONS_TOPIC
from monitor.core.ingest.records import Record
from monitor.errors import VitmonError


class JsonlError(VitmonError):
    """A line that is neither a message envelope nor a raw event."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path.name} line {line}: {reason}")
        self.path, self.line, self.reason = path, line, reason


class Message(NamedTuple):
    """One message of a file: the topic as written (raw events: the default topic of their
    schema), the key and the exact message bytes."""

    topic: str
    key: bytes | None
    value: bytes


def envelope(topic: str, key: bytes | None, value: bytes) -> bytes:
    """One envelope line (with its newline) for a message.

    >>> envelope("vit.labels", None, b'{"a":1}')
    b'{"topic":"vit.labels","key":null,"value":"{\\\\"a\\\\":1}"}\\n'
    >>> list(read_lines([envelope("t", b"k", b"\\xff")], Path("x.jsonl")))
    [(0, Message(topic='t', key=b'k', value=b'\\xff'))]
    """
    record: dict[str, str | None] = {"topic": topic, "key": None if key is None else key.decode()}
    try:
        record["value"] = value.decode("utf-8")
    except UnicodeDecodeError:
        record["value_b64"] = base64.b64encode(value).decode("ascii")
    return orjson.dumps(record) + b"\n"


def read_messages(path: Path) -> Iterator[Message]:
    """The messages of a file, in order."""
    with path.open("rb") as fh:
        for _, message in read_lines(fh, path):
            yield message


def read_records(path: Path, predictions_topic: str = PREDICTIONS_TOPIC,
                 labels_topic: str = LABELS_TOPIC) -> Iterator[Record]:
    """The messages of a file as consumed records of ``predictions_topic`` or ``labels_topic``
    (an envelope's topic is a labels topic when its name contains "label"), partition 0, offset
    = the line's index."""
    with path.open("rb") as fh:
        for index, m in read_lines(fh, path):
            topic = labels_topic if "label" in m.topic else predictions_topic
            yield Record(topic, 0, index, m.key, m.value, 0)


def read_lines(lines: Iterator[bytes] | list[bytes], path: Path) -> Iterator[tuple[int, Message]]:
    """(0-based line index, message) for every non-blank line; :class:`JsonlError` otherwise."""
    for index, line in enumerate(lines):
        if line.strip():
            yield index, _message(line, path, index + 1)


def _message(line: bytes, path: Path, number: int) -> Message:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise JsonlError(path, number, f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise JsonlError(path, number, f"expected a JSON object, got {type(obj).__name__}")
    if "schema" in obj:  # a raw event: the line is the message
        topic = LABELS_TOPIC if obj["schema"] == LABEL_SCHEMA else PREDICTIONS_TOPIC
        return Message(topic, None, line.rstrip(b"\r\n"))
    topic, key = obj.get("topic"), obj.get("key")
    if not isinstance(topic, str) or not ("value" in obj or "value_b64" in obj):
        raise JsonlError(path, number, 'neither an event (no "schema") nor a message '
                                       '{"topic", "key", "value" | "value_b64"}')
    if key is not None and not isinstance(key, str):
        raise JsonlError(path, number, '"key" must be a string or null')
    if "value" in obj:
        if isinstance(obj["value"], dict):  # an event object inline: its JSON is the message
            value = orjson.dumps(obj["value"])
        elif isinstance(obj["value"], str):
            value = obj["value"].encode("utf-8")
        else:
            raise JsonlError(path, number, '"value" must be the message text or an event object')
    else:
        try:
            value = base64.b64decode(obj["value_b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise JsonlError(path, number, '"value_b64" is not base64') from None
    return Message(topic, None if key is None else key.encode(), value)
