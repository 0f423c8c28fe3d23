"""Event contract v1: topic names, schema ids and the encoder shared by producers.

This is the only module of ``monitor`` that producers (the simulator, model servers' client
code) import. It depends on nothing but the standard library, numpy and orjson.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

PREDICTION_SCHEMA = "vit.prediction/v1"
LABEL_SCHEMA = "vit.label/v1"
PREDICTIONS_TOPIC = "vit.predictions"
LABELS_TOPIC = "vit.labels"
DLQ_TOPIC = "vit.predictions.dlq"
MAX_MESSAGE_BYTES = 1 << 20  # 1 MiB: larger messages are rejected as "oversized"
REASON_HEADER = "vitmon-reject-reason"


def embedding_to_b64(vector: np.ndarray, dtype: str = "f16") -> tuple[str, str]:
    """Compact wire form of an embedding: little-endian f16/f32 bytes, base64-encoded."""
    np_dtype = {"f16": "<f2", "f32": "<f4"}[dtype]
    raw = np.ascontiguousarray(vector, dtype=np_dtype).tobytes()
    return base64.b64encode(raw).decode("ascii"), dtype


def encode_prediction(event: Mapping[str, Any]) -> bytes:
    """Serialise a prediction event dict (``schema`` is filled in when absent).

    numpy arrays and scalars are accepted and written as JSON numbers.

    >>> encode_prediction({"event_id": "e1", "ts": 0, "model": "m", "model_version": "1",
    ...                    "latency_ms": 3.5, "status": "ok", "pred": 2})[:40]
    b'{"schema":"vit.prediction/v1","event_id"'
    """
    body = {"schema": PREDICTION_SCHEMA, **event}
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def encode_label(event_id: str, label: int, ts: int | str, source: str | None = None) -> bytes:
    """Serialise a label event.

    >>> encode_label("e1", 3, 1700000000000)
    b'{"schema":"vit.label/v1","event_id":"e1","label":3,"ts":1700000000000}'
    """
    body: dict[str, Any] = {"schema": LABEL_SCHEMA, "event_id": event_id, "label": int(label),
                            "ts": ts}
    if source is not None:
        body["source"] = source
    return orjson.dumps(body)


def prediction_key(event: Mapping[str, Any]) -> bytes | None:
    """Message key of a prediction: its ``event_id`` (None when it has none).

    A high-cardinality key spreads a model's traffic over every partition, so a group of
    processes shares it (docs/scaling.md); a low-cardinality key such as ``model_version`` would
    put a model's whole traffic on one partition. Order across events is not needed: window
    state is mergeable and a re-sent event (same key, same partition) is counted once."""
    event_id = event.get("event_id")
    return str(event_id).encode() if event_id is not None else None
