"""Malformed prediction messages, one builder per kind of breakage the monitor must reject.

Each builder takes a valid prediction event (a dict, already carrying its own ``event_id``) and
returns the bytes of a broken message. The ``event_id`` is kept readable in the bytes wherever the
breakage allows, and the manifest identifies every malformed message by that id, its kind and the
sha256 of its bytes, so a test can match the dead-letter topic without relying on offsets.

>>> event = {"event_id": "x-bad-000001", "ts": 0, "model": "m", "model_version": "1",
...          "latency_ms": 3.0, "status": "ok", "pred": 1, "confidence": 0.9}
>>> build("negative_latency", event)[:60]
b'{"schema":"vit.prediction/v1","event_id":"x-bad-000001","ts"'
>>> build("bad_json", event).endswith(b"}")
False
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from monitor.core.ingest.events import MAX_MESSAGE_BYTES, embedding_to_b64, encode_prediction

Event = dict[str, Any]
_NAN, _INF = "__vitmon_nan__", "__vitmon_inf__"


def _with(event: Event, **changes: Any) -> bytes:
    return encode_prediction({**event, **changes})


def _without(event: Event, field: str) -> bytes:
    return encode_prediction({k: v for k, v in event.items() if k != field})


def _literal(event: Event, field: str, marker: str, token: bytes) -> bytes:
    # orjson refuses to write NaN/Infinity, but producers built on other JSON libraries do.
    return _with(event, **{field: marker}).replace(orjson.dumps(marker), token)


def _oversized(event: Event) -> bytes:
    padding = "x" * (MAX_MESSAGE_BYTES + 1024)
    return _with(event, attrs={**event.get("attrs", {}), "debug_dump": padding})


def _not_utf8(event: Event) -> bytes:
    body = _with(event, attrs={**event.get("attrs", {}), "camera_id": "cam-\u00e9"})
    return body.replace("\u00e9".encode(), b"\xff\xfe")


BUILDERS: dict[str, Callable[[Event], bytes]] = {
    "bad_json": lambda e: encode_prediction(e)[: len(encode_prediction(e)) // 2],
    "not_utf8": _not_utf8,
    "not_object": lambda e: orjson.dumps([e]),
    "missing_field": lambda e: _without(e, "model_version"),
    "wrong_type": lambda e: _with(e, latency_ms=str(e["latency_ms"])),
    "nan": lambda e: _literal(e, "confidence", _NAN, b"NaN"),
    "infinity": lambda e: _literal(e, "latency_ms", _INF, b"Infinity"),
    "negative_latency": lambda e: _with(e, latency_ms=-abs(float(e["latency_ms"])) - 1.0),
    "wrong_embedding_dim": lambda e: _with(
        e, embedding_b64=embedding_to_b64([0.5] * 100, "f16")[0], embedding_dtype="f16"),
    "bad_base64": lambda e: _with(e, embedding_b64="!!not*base64!!", embedding_dtype="f16"),
    "bad_schema": lambda e: _with(e, schema="vit.prediction/v9"),
    "bad_status": lambda e: _with(e, status="maybe"),
    "bad_timestamp": lambda e: _with(e, ts="yesterday at noon"),
    "oversized": _oversized,
}
KINDS: tuple[str, ...] = tuple(BUILDERS)


def kind_for(serial: int) -> str:
    """Kinds cycle so every kind appears once per cycle; ``oversized`` (1 MiB each) only in every
    fourth cycle to keep the stream small.

    >>> [kind_for(i) for i in (0, 13, 27, 69)]
    ['bad_json', 'oversized', 'missing_field', 'oversized']
    """
    kind = KINDS[serial % len(KINDS)]
    if kind == "oversized" and (serial // len(KINDS)) % 4 != 0:
        return "missing_field"
    return kind


def build(kind: str, event: Event) -> bytes:
    """The malformed message of ``kind`` derived from ``event``."""
    return BUILDERS[kind](event)
