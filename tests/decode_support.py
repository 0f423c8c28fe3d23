"""Building messages for the decoder's unit tests (``tests/test_decode*.py``)."""

from __future__ import annotations

import functools

import numpy as np
import orjson

from monitor.core.ingest.decode import REASONS, PredictionDecode, Rejection, decode_predictions
from monitor.core.ingest.events import PREDICTIONS_TOPIC, embedding_to_b64
from monitor.core.ingest.records import Record

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


Rec = functools.partial(Record, timestamp_ms=0)  # a consumed record; the decoder ignores the time


def event(**changes) -> dict:
    """A valid ok event; a change to ``None`` removes the field."""
    ev = {"event_id": "e1", "ts": T0, "model": "m", "model_version": "1", "latency_ms": 12.5,
          "status": "ok", "pred": 1, "probs": [0.2, 0.7, 0.1], "embedding": [0.5, -1.0, 2.0]}
    ev.update(changes)
    return {k: v for k, v in ev.items() if v is not None}


def raw(**changes) -> bytes:
    """A message as JSON text with ``schema``; unlike encode_prediction, keeps explicit nulls
    when a change is the string "null"."""
    body = {"schema": "vit.prediction/v1", **event(**changes)}
    return orjson.dumps({k: (None if v == "null" else v) for k, v in body.items()})


def recs(*values: bytes | None, topic: str = PREDICTIONS_TOPIC, partition: int = 3,
         first: int = 100) -> list[Record]:
    return [Rec(topic, partition, first + i, b"key-%d" % i, v) for i, v in enumerate(values)]


def decode(*values, dims=None, counts=None, **kw) -> PredictionDecode:
    return decode_predictions(recs(*values), {} if dims is None else dims, counts, **kw)


def only_rejection(value: bytes | None, **kw) -> Rejection:
    out = decode(value, **kw)
    assert out.batches == {} and len(out.rejected) == 1, out
    rej = out.rejected[0]
    assert (rej.topic, rej.partition, rej.offset, rej.key) == (PREDICTIONS_TOPIC, 3, 100,
                                                                 b"key-0")
    assert rej.value is value  # the original bytes, untouched
    assert rej.reason in REASONS and rej.detail and "\n" not in rej.detail
    return rej


def f16_b64(vector) -> dict:
    b64, dtype = embedding_to_b64(np.asarray(vector), "f16")
    return {"embedding": None, "embedding_b64": b64, "embedding_dtype": dtype}
