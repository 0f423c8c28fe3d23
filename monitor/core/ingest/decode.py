"""Decode and validate Kafka records into columnar batches: the consumer's hot path.

Fast path: ``monitor.core.ingest.fast_decode`` takes the common wire format (an ``ok`` event,
int ``ts``, unpadded base64 ``f16`` embedding, no escapes, no unknown field, its model's D and C
known) a chunk at a time: msgspec parses and type-checks it in C into the row ``_prediction``
would give. Whatever it is unsure of (string or float ``ts``, error events, JSON-list or ``f32``
embeddings, parked events, an event that teaches D or C, any field outside its types) takes the
per-record path below, which alone rejects; the outcome is the same (``fast=False`` forces
this path; ``tests/test_decode_fast.py`` compares the two).

Each message is parsed with ``orjson`` and checked against event contract v1 (see
``monitor.core.ingest.events`` and the brief) by cheap inline type checks; a valid event
becomes one tuple in its model's row list (the fast path's chunks come as columns already),
and they become numpy columns at the end (base64 embeddings go to one buffer per call, decoded
a few dozen events per base64 call: ``monitor.core.ingest.b64buffer``; array values are checked
vectorised). Bad records never raise: each
becomes a :class:`Rejection` that keeps the original key, bytes, partition and offset, with a
stable ``reason`` code (:data:`REASONS`) and one human line.

Checks run in this order; the first failure is the reason:

1. ``empty`` (null or empty value), ``oversized`` (more than ``max_bytes``; before parsing);
2. ``malformed_json`` (not UTF-8, not JSON, not an object), ``non_finite`` (``NaN``,
   ``Infinity`` or a number that overflows a double, anywhere in the message);
3. ``bad_schema``: ``schema`` absent or not the topic's schema. This version gate comes before
   any field is read, since another schema's fields mean something else;
4. each field in contract order: required and absent (or ``null``) -> ``missing_field``; wrong
   JSON type -> ``wrong_type`` (``true`` is not a number, ``3.0`` is not an int); right type,
   invalid value -> ``bad_value``;
5. ``embedding_dim`` / ``probs_dim``: the length differs from the model's known D / C;
6. vectorised over the batch: ``bad_value`` for probs that are negative or do not sum to 1, and
   ``non_finite`` for NaN/Inf inside a base64 embedding (or a JSON embedding value beyond
   float32). An event that would teach its model's D or C is checked at once instead, so a
   rejected event never teaches a dimension; a parked event's checks run vectorised over the
   call's parked events (nothing is learnt from them).

Unpadded base64 text is validated when the call's buffer decodes it, after the loop; an invalid
one is still reported as in step 4 (its row is dropped before any later check, and an event
that fails a later check first is given the base64 reason), so the order above holds.

Value rules and tolerances: ``event_id`` 1-128 characters; ``ts`` epoch milliseconds (int, or
float truncated to int) or RFC 3339 with ``Z`` or an offset, 1970 <= ts < year 10000;
``latency_ms`` >= 0; ``pred`` in [0, 2**31) and, once the model's class count C is known,
``pred < C``; ``confidence`` in [0, 1] (max(probs) when absent); ``probs`` non-empty, every
``p >= 0`` and ``|sum - 1| <= 1e-3 + 5e-5 * C`` (float noise, plus half a unit in the 4th decimal
per class so producers that round to 4 decimals pass); ``embedding_dtype`` ``f16``/``f32``;
base64 strict (RFC 4648 alphabet and padding) of a length that is a multiple of the item size;
not both ``embedding`` and ``embedding_b64``. An ``error`` event needs ``error_code`` (string or
integer, kept as a string) and may lack ``pred``. ``null`` in an optional field means absent (also
inside ``image`` and ``attrs``). No string may contain ``\\u0000``, which PostgreSQL cannot store
(``bad_value``). Unknown fields are ignored (forward compatible). A duplicate ``event_id`` is not
a rejection: storage dedupes.

``embedding_dims`` and ``class_counts`` (model -> D, model -> C) are read and *extended*: the
first accepted event of an unknown model that carries an embedding (probs) fixes its D (C). That
is for offline decoding (reference capture, benches). The consumer passes a ``gate``
(:class:`DimensionGate`) instead: D is then per (model, version) and never learnt from one
event; an event whose version has no D yet and that passes every other check is *parked*
(:class:`Parked`, returned beside the batches) for the caller to decide by consensus
(``monitor.core.ingest.consensus``).

>>> from types import SimpleNamespace as Rec
>>> from monitor.core.ingest.events import encode_prediction
>>> ok = encode_prediction({"event_id": "e1", "ts": "2026-01-01T00:00:00.5Z", "model": "m",
...     "model_version": "1", "latency_ms": 12, "status": "ok", "pred": 1,
...     "probs": [0.25, 0.75], "embedding": [0.5, -1, 2], "attrs": {"cam": 7}})
>>> nan = b'{"schema": "vit.prediction/v1", "event_id": "e2", "latency_ms": NaN}'
>>> recs = [Rec(topic="vit.predictions", partition=0, offset=o, key=None, value=v,
...             timestamp_ms=0) for o, v in enumerate([ok, nan, b"{"])]
>>> dims = {}
>>> out = decode_predictions(recs, dims)
>>> b = out.batches["m"]
>>> b.ts_ms.tolist(), b.confidence.tolist(), b.embedding.shape, b.attrs["cam"].tolist()
([1767225600500], [0.75], (1, 3), ['7'])
>>> dims, [(r.offset, r.reason) for r in out.rejected], out.positions
({'m': 3}, [(1, 'non_finite'), (2, 'malformed_json')], {('vit.predictions', 0): 3})
"""

from __future__ import annotations

import base64
import binascii
import functools
import gc
import json
import sys
from bisect import bisect_right
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import accumulate, chain
from operator import attrgetter
from typing import Any, Protocol

import numpy as np
import orjson

from monitor.contract import Batch
from monitor.core.ingest import fast_decode
from monitor.core.ingest.b64buffer import Base64Buffer, f16_rows, finite_rows
from monitor.core.ingest.events import LABEL_SCHEMA, MAX_MESSAGE_BYTES, PREDICTION_SCHEMA
from monitor.core.ingest.fast_decode import FastRows, KeyedRows, keyed

OVERSIZED, EMPTY, MALFORMED_JSON, NON_FINITE = "oversized", "empty", "malformed_json", "non_finite"
BAD_SCHEMA, MISSING_FIELD, WRONG_TYPE, BAD_VALUE = (
    "bad_schema", "missing_field", "wrong_type", "bad_value")
EMBEDDING_DIM, PROBS_DIM = "embedding_dim", "probs_dim"
#: Every reason code, e.g. to start ``vitmon_events_rejected_total{reason}`` at zero.
REASONS = (OVERSIZED, EMPTY, MALFORMED_JSON, NON_FINITE, BAD_SCHEMA, MISSING_FIELD, WRONG_TYPE,
           BAD_VALUE, EMBEDDING_DIM, PROBS_DIM)

MAX_EVENT_ID_CHARS = 128
PROBS_SUM_ATOL = 1e-3
PROBS_SUM_ATOL_PER_CLASS = 5e-5
_INT32_MAX = 2**31 - 1
_MAX_TS_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z, exclusive
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
_NAN = float("nan")
_INF = float("inf")
_NUMBER = frozenset((int, float))  # `type(x) in _NUMBER` excludes bool, unlike isinstance
_SCALAR = frozenset((str, int, float))
_STRING_OR_NONE = frozenset((str, type(None)))
_F16, _F32, _LIST = 1, 2, 3  # embedding payload kinds
_DTYPES = {"f16": _F16, "f32": _F32}
#: Optional fields in _prediction's order (a tuple: map(d.get, ...) keeps it).
_OPTIONAL = ("batch_size", "gpu_mem_mb", "gpu_util", "cold_start", "artifact_id", "input_sha256",
             "sample_uri")
#: A model's columns (``_columns``): index, partition, offset, then a row's fields (by position)
_VERSION_COLUMN, _KIND_COLUMN, _EMB_COLUMN, _IMAGE_COLUMN, _ATTRS_COLUMN = 5, 11, 12, 13, 14
_TOPIC, _PARTITION, _OFFSET = attrgetter("topic"), attrgetter("partition"), attrgetter("offset")


class RecordLike(Protocol):
    """What the decoder reads from a consumed record (``monitor.core.kafka.Record`` fits).
    Read-only properties, so frozen dataclasses and named tuples match too."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that failed validation, with everything the dead-letter path stores."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str  # one of REASONS
    detail: str  # one human line
    event_id: str | None  # when it could be read
    model: str | None = None  # when it could be read (rejected_events.model, status per model)
    model_version: str | None = None


class DimensionGate(Protocol):
    """What the consumer knows of a (model, version): its embedding dimension D; 0 when the
    version is admitted but D is undecided (its events with an embedding are parked); None when
    the version is not admitted yet (all its events are parked, for the checkpoint's caps)."""

    def expected(self, model: str, version: str) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Parked:
    """A valid event held for the checkpoint: its version is not admitted yet, or its version's
    embedding dimension is undecided. ``dim``: its embedding's length (0 without one)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    event_id: str
    model: str
    model_version: str
    dim: int
    ts_ms: int  # its event time: a parked event advances its partition's watermark too
    #: The decoder's validated row, so that the intake settles the event without parsing and
    #: validating it again (``decode_predictions(..., decoded=...)``); None once stored.
    row: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def timestamp_ms(self) -> int:
        """-1 (not kept): a Parked is a :class:`RecordLike`, so the intake hands it back to
        ``decode_predictions`` as it is (a new Record per event cost ~1 us)."""
        return -1


@dataclass(frozen=True, slots=True)
class PredictionDecode:
    """``batches``: one Batch per model, rows in stream order, ``extras["_partition"]`` and
    ``extras["_offset"]`` (int64) locate each row. ``rejected`` is in stream order.
    ``positions``: (topic, partition) -> next offset to consume (last offset seen + 1, counting
    rejected records), what the checkpoint commits. ``parked``: events waiting for their
    version's embedding dimension (only with a gate). With a gate, a model whose versions differ
    in D within one call gets one batch per D: the first keyed by the model, others ``model#D``."""

    batches: dict[str, Batch]
    rejected: list[Rejection]
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    parked: list[Parked] = field(default_factory=list)

    @property
    def n_accepted(self) -> int:
        return sum(len(b) for b in self.batches.values())


@dataclass(frozen=True, slots=True)
class LabelDecode:
    """Accepted labels as columns (stream order; a later label of the same event wins)."""

    event_id: np.ndarray  # object[str]
    label: np.ndarray  # int64
    ts_ms: np.ndarray  # int64
    source: np.ndarray  # object[str | None]
    partition: np.ndarray  # int64
    offset: np.ndarray  # int64
    rejected: list[Rejection]
    positions: dict[tuple[str, int], int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.event_id.shape[0])


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail


class _NonFinite(Exception):
    pass


class _Park(Exception):
    def __init__(self, dim: int, ts_ms: int, row: tuple) -> None:
        self.dim = dim
        self.ts_ms = ts_ms
        self.row = row


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."


def _check(name: str, value: Any, want: str, type_ok: bool) -> _Reject:
    """The rejection for a field that failed its fast check (absent, wrong type or value)."""
    if value is None:
        return _Reject(MISSING_FIELD, f"required field {name!r} is missing")
    reason = BAD_VALUE if type_ok else WRONG_TYPE
    return _Reject(reason, f"field {name!r} must be {want}, got {_show(value)}")


# --- parsing ----------------------------------------------------------------------------------

def _const(name: str) -> float:
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    x = float(text)
    if x - x != 0.0:
        raise _NonFinite(text)
    return x


def _finite_int(text: str) -> int:
    if len(text) > 308 and float(text) in (_INF, -_INF):  # beyond any double: orjson calls it
        raise _NonFinite(text[:20] + "...")              # infinity (e.g. 309 nines)
    return int(text)


def _loads(value: bytes | None, max_bytes: int) -> dict:
    """The message as a dict, or _Reject (emptiness, size, JSON, non-finite numbers)."""
    if not value:
        raise _Reject(EMPTY, "message value is null" if value is None else "message is empty")
    if len(value) > max_bytes:
        raise _Reject(OVERSIZED, f"message is {len(value)} bytes, limit {max_bytes}")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        # orjson refuses NaN, Infinity and overflowing numbers like broken JSON; the stdlib
        # parser tells them apart. Only bad messages take this slow path.
        try:
            json.loads(bytes(value).decode("utf-8"), parse_constant=_const,
                       parse_float=_finite_float, parse_int=_finite_int)
        except _NonFinite as nf:
            raise _Reject(NON_FINITE, f"non-finite number {nf} in message") from None
        except (ValueError, RecursionError):
            pass
        raise _Reject(MALFORMED_JSON, f"not valid JSON: {exc}") from None
    if type(obj) is not dict:
        raise _Reject(MALFORMED_JSON, f"message must be a JSON object, got {type(obj).__name__}")
    if b"\\" in value and b"\\u0000" in value and _has_nul(obj):  # memchr first: 15x faster
        raise _Reject(BAD_VALUE, "strings must not contain \\u0000")
    return obj


def _has_nul(obj: Any) -> bool:
    if type(obj) is str:
        return "\x00" in obj
    if type(obj) is dict:
        return any(_has_nul(k) or _has_nul(v) for k, v in obj.items())
    return type(obj) is list and any(_has_nul(v) for v in obj)


def _readable(d: dict | None, key: str) -> str | None:
    v = None if d is None else d.get(key)
    return v if type(v) is str and 0 < len(v) <= MAX_EVENT_ID_CHARS else None


# --- fields -----------------------------------------------------------------------------------

def parse_ts(value: Any) -> int:
    """Event time as epoch milliseconds, from epoch ms (int or float) or an RFC 3339 string.

    Raises ValueError for anything else, including naive times and times before 1970.

    >>> parse_ts("2026-01-01T00:00:00Z"), parse_ts("2026-01-01T01:00:00.25+01:00")
    (1767225600000, 1767225600250)
    >>> parse_ts(1767225600000.9), parse_ts("2026-01-01t00:00:00.123456789z")
    (1767225600000, 1767225600123)
    >>> parse_ts("2026-01-01T00:00:00")
    Traceback (most recent call last):
    ...
    ValueError: not an RFC 3339 date-time with Z or an offset: '2026-01-01T00:00:00'
    """
    t = type(value)
    if t is str:
        ms = _rfc3339_ms(value)
        if not 0 <= ms < _MAX_TS_MS:
            raise ValueError(f"outside 1970..9999: {value!r}")
        return ms
    if t is int or t is float:
        if not 0 <= value < _MAX_TS_MS:  # also refuses NaN
            raise ValueError(f"epoch milliseconds outside [0, {_MAX_TS_MS}): {value!r}")
        return int(value)
    raise ValueError(f"a timestamp is a string or a number, not {t.__name__}")


def _rfc3339_ms(s: str) -> int:
    # YYYY-MM-DD(T|t| )HH:MM:SS[.frac](Z|z|+HH:MM|-HH:MM); fromisoformat checks the digits.
    if (len(s) < 20 or s[4] != "-" or s[7] != "-" or s[10] not in "Tt " or s[13] != ":"
            or s[16] != ":" or not s.isascii()):
        raise ValueError(f"not an RFC 3339 date-time with Z or an offset: {s!r}")
    tail = s[19:]
    if tail[-1] in "Zz":
        frac, offset = tail[:-1], "+00:00"
    elif len(tail) >= 6 and tail[-6] in "+-" and tail[-3] == ":" and tail[-2:] < "60":
        frac, offset = tail[:-6], tail[-6:]  # fromisoformat alone takes minutes 60-99
    else:
        raise ValueError(f"not an RFC 3339 date-time with Z or an offset: {s!r}")
    if frac:
        if len(frac) < 2 or frac[0] != "." or not frac[1:].isdigit():
            raise ValueError(f"bad fractional seconds in {s!r}")
        frac = frac[:7].ljust(7, "0")  # microseconds (Python 3.10 needs exactly 3 or 6 digits)
    try:
        dt = datetime.fromisoformat(f"{s[:10]}T{s[11:19]}{frac}{offset}")
    except ValueError as exc:
        raise ValueError(f"invalid date-time {s!r}: {exc}") from None
    return (dt - _EPOCH) // _MS


def _ts(v: Any) -> int:
    if type(v) is str:
        try:
            return parse_ts(v)
        except ValueError as exc:
            raise _Reject(BAD_VALUE, f"field 'ts': {exc}") from None
    raise _check("ts", v, f"epoch milliseconds in [0, {_MAX_TS_MS}) or an RFC 3339 string",
                 type(v) in _NUMBER)


def _embedding(d: dict) -> tuple[int, Any, int]:
    """(kind, payload, D): payload is raw little-endian bytes or a list of numbers."""
    e, b = d.get("embedding"), d.get("embedding_b64")
    if e is not None:
        if b is not None:
            raise _Reject(BAD_VALUE, "give 'embedding' or 'embedding_b64', not both")
        if type(e) is not list or not e or not _NUMBER.issuperset(map(type, e)):
            raise _array_error("embedding", e)
        return _LIST, e, len(e)
    if type(b) is not str:
        raise _check("embedding_b64", b, "a base64 string", False)
    dt = d.get("embedding_dtype")
    kind = _DTYPES.get(dt) if type(dt) is str else None
    if kind is None:
        if dt is None:
            raise _Reject(MISSING_FIELD, "field 'embedding_dtype' is required with 'embedding_b64'")
        raise _check("embedding_dtype", dt, '"f16" or "f32"', type(dt) is str)
    size = 2 if kind == _F16 else 4
    n = len(b) >> 2
    if n and not len(b) & 3 and b[-1] != "=" and not n * 3 % size:
        # Unpadded text of a whole number of values: if it is valid base64 it holds n * 3
        # bytes, so it is decoded with the poll's (Base64Buffer), its errors found there.
        return kind, b, n * 3 // size
    raw = _b64_strict(b)
    if not raw or len(raw) % size:
        raise _Reject(BAD_VALUE, f"field 'embedding_b64' decodes to {len(raw)} bytes, "
                                 f"not a positive multiple of {size} ({dt})")
    return kind, raw, len(raw) // size


def _b64_strict(text: str) -> bytes:
    try:
        return _b64decode(text)
    except (binascii.Error, ValueError) as exc:
        raise _b64_reject(exc) from None


def _b64_reject(exc: Exception) -> _Reject:
    return _Reject(BAD_VALUE, f"field 'embedding_b64' is not valid base64: {exc}")


if sys.version_info >= (3, 11):
    def _b64_stdlib(text: str) -> bytes:
        return binascii.a2b_base64(text, strict_mode=True)
else:  # pragma: no cover - Python 3.10 has no strict_mode
    def _b64_stdlib(text: str) -> bytes:
        return base64.b64decode(text, validate=True)

try:  # SIMD base64 when installed: ~4x faster than binascii, the largest cost of a b64 event
    from pybase64 import b64decode as _pybase64_decode
except ImportError:
    _b64decode, B64_BACKEND = _b64_stdlib, "binascii"
else:
    def _b64decode(text: str) -> bytes:
        return _pybase64_decode(text, validate=True)

    B64_BACKEND = "pybase64"


def _array_error(name: str, v: Any) -> _Reject:
    if type(v) is not list:
        return _check(name, v, "an array of numbers", False)
    if not v:
        return _Reject(BAD_VALUE, f"field {name!r} must not be empty")
    bad = next(x for x in v if type(x) not in _NUMBER)
    return _Reject(WRONG_TYPE, f"field {name!r} must hold numbers only, got {_show(bad)}")


@np.errstate(over="ignore")
def _probs_error(p: np.ndarray) -> _Reject | None:
    """bad_value when float64 probs ``p`` [C] are negative or do not sum to 1, else None."""
    if p.min() < 0:
        return _Reject(BAD_VALUE, f"field 'probs' must be >= 0, got {float(p.min()):.6g}")
    total = float(p.sum())
    if abs(total - 1.0) > PROBS_SUM_ATOL + PROBS_SUM_ATOL_PER_CLASS * p.size:
        return _Reject(BAD_VALUE, f"field 'probs' must sum to 1, sums to {total:.6g}")
    return None


def _all_finite(kind: int, payload: Any) -> bool:
    """Whether an embedding holds no NaN or Infinity (as float32, like ``_batch``'s check)."""
    if kind == _LIST:
        with np.errstate(over="ignore"):  # a JSON value beyond float32 becomes inf: non_finite
            return bool(np.isfinite(np.array(payload, dtype=np.float32)).all())
    # base64: float16 and float32 keep their finiteness as float32, so no cast (-2 us)
    return bool(np.isfinite(np.frombuffer(payload, "<f2" if kind == _F16 else "<f4")).all())


def _image(v: Any) -> dict | None:
    if type(v) is not dict:
        raise _check("image", v, "an object of numbers", False)
    for k, x in v.items():
        if type(x) not in _NUMBER and x is not None:
            raise _Reject(WRONG_TYPE, f"field 'image.{k}' must be a number, got {_show(x)}")
    return {k: x for k, x in v.items() if x is not None}  # null statistic: absent


def _attrs(v: Any) -> dict:
    if type(v) is not dict:
        raise _check("attrs", v, "an object of strings and numbers", False)
    for k, x in v.items():
        if type(x) not in _SCALAR and x is not None:
            raise _Reject(WRONG_TYPE, f"field 'attrs.{k}' must be a string or a number, "
                                      f"got {_show(x)}")
    return {k: x for k, x in v.items() if x is not None}  # null attribute: absent


# --- predictions ------------------------------------------------------------------------------

def _prediction(d: dict, dims: MutableMapping[str, int], counts: MutableMapping[str, int],
                gate: DimensionGate | None, sink: Base64Buffer) -> tuple:
    """One validated row (the field order of ``_batch``) or _Reject. Fast checks inline, the
    exact reason from a helper only on failure. Learns D and C only for a valid row; with a
    ``gate``, D comes from it and an undecided version's valid event raises _Park. A base64
    embedding's bytes go to ``sink``: the row holds their offset there."""
    get = d.get
    if get("schema") != PREDICTION_SCHEMA:
        raise _Reject(BAD_SCHEMA, f"schema must be {PREDICTION_SCHEMA!r}, "
                                  f"got {_show(get('schema'))}")
    event_id = get("event_id")
    if type(event_id) is not str or not 0 < len(event_id) <= MAX_EVENT_ID_CHARS:
        raise _check("event_id", event_id, f"a string of 1 to {MAX_EVENT_ID_CHARS} characters",
                     type(event_id) is str)
    ts = get("ts")
    if type(ts) is not int or not 0 <= ts < _MAX_TS_MS:
        ts = int(ts) if type(ts) is float and 0 <= ts < _MAX_TS_MS else _ts(ts)
    model = get("model")
    if type(model) is not str or not model:
        raise _check("model", model, "a non-empty string", type(model) is str)
    version = get("model_version")
    if type(version) is not str or not version:
        raise _check("model_version", version, "a non-empty string", type(version) is str)
    latency = get("latency_ms")
    if type(latency) not in _NUMBER or latency < 0:
        raise _check("latency_ms", latency, "a number >= 0", type(latency) in _NUMBER)
    status = get("status")
    if status == "ok":
        is_error = False
    elif status == "error":
        is_error = True
    else:
        raise _check("status", status, '"ok" or "error"', type(status) is str)
    pred = get("pred")
    if type(pred) is not int or not 0 <= pred <= _INT32_MAX:
        if pred is not None or not is_error:
            raise (_check("pred", pred, f"an integer in [0, {_INT32_MAX}]", type(pred) is int)
                   if pred is not None else
                   _Reject(MISSING_FIELD, "field 'pred' is required when status is \"ok\""))
        pred = -1
    error_code = get("error_code")
    if type(error_code) is not str:
        if type(error_code) is int:
            error_code = str(error_code)
        elif error_code is not None:
            raise _check("error_code", error_code, "a string", False)
        elif is_error:
            raise _Reject(MISSING_FIELD, "field 'error_code' is required when status is \"error\"")
    probs = get("probs")
    if probs is not None and (type(probs) is not list or not probs
                              or not _NUMBER.issuperset(map(type, probs))):
        raise _array_error("probs", probs)
    confidence = get("confidence")
    if confidence is None:
        confidence = _NAN  # max(probs), vectorised in _batch
    elif type(confidence) not in _NUMBER or not 0 <= confidence <= 1:
        raise _check("confidence", confidence, "a number in [0, 1]", type(confidence) in _NUMBER)
    emb = get("embedding_b64")
    if (type(emb) is str and len(emb) > 7 and not len(emb) & 7 and emb[-1] != "="
            and get("embedding") is None and get("embedding_dtype") == "f16"):
        kind, dim = _F16, len(emb) // 8 * 3  # _embedding's common case inline: deferred text
    elif emb is None and get("embedding") is None:
        kind, dim = 0, 0
    else:
        kind, emb, dim = _embedding(d)
    try:
        image = get("image")
        if image is not None and (type(image) is not dict
                                  or not _NUMBER.issuperset(map(type, image.values()))):
            image = _image(image)
        attrs = get("attrs")
        if attrs is not None and (type(attrs) is not dict
                                  or not _SCALAR.issuperset(map(type, attrs.values()))):
            attrs = _attrs(attrs)  # numbers become strings in _batch
        if d.keys().isdisjoint(_OPTIONAL):
            batch_size = gpu_mem = gpu_util = cold = artifact = sha = uri = None
        else:
            batch_size, gpu_mem, gpu_util, cold, artifact, sha, uri = map(get, _OPTIONAL)
            if ((batch_size is not None and type(batch_size) not in _NUMBER)
                    or (gpu_mem is not None and type(gpu_mem) not in _NUMBER)
                    or (gpu_util is not None and type(gpu_util) not in _NUMBER)
                    or (cold is not None and type(cold) is not bool
                        and type(cold) not in _NUMBER)
                    or (artifact is not None and type(artifact) is not str)
                    or (sha is not None and type(sha) is not str)
                    or (uri is not None and type(uri) is not str)):
                raise _optional_error(d)
        # _sized's common case inline: D and C known, both match, pred < C
        known = dims.get(model) if gate is None else gate.expected(model, version)
        n_classes = counts.get(model)
        if not (known and n_classes is not None and pred < n_classes
                and (not kind or dim == known) and (probs is None or len(probs) == n_classes)):
            park = _sized(model, version, pred, probs, kind, emb, dim, dims, counts, gate)
        else:
            park = False
    except _Reject:
        if type(emb) is str:  # base64 not decoded yet: its error comes first, as in the
            _b64_strict(emb)  # contract order
        raise
    if type(emb) is str:
        emb = sink.add(emb)  # an invalid text is found with the poll's (sink.errors)
    elif type(emb) is bytes:
        emb = sink.put(emb)
    row = (event_id, ts, version, latency, is_error, pred, confidence, probs, kind, emb, image,
           attrs, cold, error_code, batch_size, gpu_mem, gpu_util, artifact, sha, uri)
    if park:
        raise _Park(dim if kind else 0, ts, row)
    return row


def _sized(model: str, version: str, pred: int, probs: list | None, kind: int, emb: Any,
           dim: int, dims: MutableMapping[str, int], counts: MutableMapping[str, int],
           gate: DimensionGate | None) -> bool:
    """The last checks of a row whose fields passed (``_prediction``'s, or a parked event's
    kept row): its embedding's D and its probs' C against the model's; learns them, or raises
    _Reject, or says the row is to be parked (True). Only a row that passed everything else may
    teach D or C."""
    known_dim, n_classes = dims.get(model) if gate is None else None, counts.get(model)
    hold = False
    if gate is not None:
        known_dim = gate.expected(model, version)
        hold = known_dim is None
        known_dim = known_dim or None
    if kind and known_dim is not None and dim != known_dim:
        raise _Reject(EMBEDDING_DIM, f"embedding of model {model!r} must have {known_dim} "
                                     f"values, got {dim}")
    if probs is not None and n_classes is not None and len(probs) != n_classes:
        raise _Reject(PROBS_DIM, f"probs of model {model!r} must have {n_classes} values, "
                                 f"got {len(probs)}")
    learn_dim = kind and known_dim is None
    park = gate is not None and (hold or learn_dim)
    if park and pred < (n_classes or (len(probs) if probs is not None else _INT32_MAX + 1)):
        # Nothing is learnt from a parked event: the checks below (base64, probs, NaN) wait
        # for the poll's parked events, vectorised (_parked_checks), as _batch's do
        return True
    learn_c = probs is not None and n_classes is None
    if learn_dim or learn_c or park:  # rare: run now the checks _batch runs vectorised
        if type(emb) is str:
            emb = _b64_strict(emb)
        if probs is not None:
            rej = _probs_error(np.array(probs, dtype=np.float64))
            if rej is not None:
                raise rej
        if kind and not _all_finite(kind, emb):
            raise _nan_reject()
        if learn_c:
            n_classes = len(probs)
    if n_classes is not None and pred >= n_classes:
        raise _Reject(BAD_VALUE, f"field 'pred' must be < {n_classes} (the classes of model "
                                 f"{model!r}), got {pred}")
    if learn_dim:
        dims[model] = dim
    if learn_c:
        counts[model] = n_classes
    return False


def _optional_error(d: dict) -> _Reject:
    for key in ("batch_size", "gpu_mem_mb", "gpu_util", "cold_start"):
        v = d.get(key)
        if v is not None and type(v) not in _NUMBER and not (key == "cold_start"
                                                              and type(v) is bool):
            return _check(key, v, "a boolean" if key == "cold_start" else "a number", False)
    key = next(k for k in ("artifact_id", "input_sha256", "sample_uri")
               if d.get(k) is not None and type(d.get(k)) is not str)
    return _check(key, d[key], "a string", False)


def decode_predictions(records: Iterable[RecordLike], embedding_dims: MutableMapping[str, int],
                       class_counts: MutableMapping[str, int] | None = None, *,
                       max_bytes: int = MAX_MESSAGE_BYTES,
                       gate: DimensionGate | None = None,
                       decoded: Sequence[Parked | None] | None = None,
                       fast: bool = True) -> PredictionDecode:
    """Decode prediction records into one :class:`Batch` per model plus the rejections.

    ``embedding_dims`` / ``class_counts`` (model -> D / C) are extended in place with what the
    records teach; without ``class_counts``, C is learnt afresh for this call only. With a
    ``gate``, D comes from the gate per (model, version) and ``embedding_dims`` is not read
    (see the module docstring). ``decoded`` (the intake's), aligned with ``records``: where it
    holds an earlier call's :class:`Parked` with its row, that record is not parsed and its
    fields are not checked again (they passed), only its D and C: the outcome is a fresh
    decode's. The cyclic garbage collector is paused during the call (see ``_gc_paused``).
    ``fast=False``: every record takes the per-record path (``fast_decode``'s gives the same
    outcome, faster; the equivalence tests compare the two).
    """
    counts: MutableMapping[str, int] = {} if class_counts is None else class_counts
    records = records if isinstance(records, Sequence) else list(records)
    # model -> its rows in stream order, in parts: a fast chunk's block (a tuple of columns,
    # as _batch reads them) or a list of the per-record path's (index, partition, offset, row)
    by_model: dict[str, list] = {}
    failed: list[tuple[int, _Reject, dict | None]] = []
    pending: list[tuple] = []  # parked rows, to check after the loop
    sink = Base64Buffer(len(records), _b64decode)
    quick = (FastRows(embedding_dims, counts, gate, sink.add, sink.add_run, max_bytes)
             if fast and fast_decode.AVAILABLE and decoded is None else None)
    if quick is not None and not isinstance(records, list | tuple):
        records = list(records)  # sliced into chunks
    step = fast_decode.CHUNK if quick is not None else max(len(records), 1)
    with _gc_paused():
        hi = 0
        while hi < len(records):
            lo, hi = hi, min(hi + step, len(records))
            hits = quick.chunk(records[lo:hi], lo) if quick is not None else None
            if type(hits) is dict:  # the whole chunk took the fast path
                for model, block in hits.items():
                    if model in by_model:
                        by_model[model].append(block)
                    else:
                        by_model[model] = [block]
                continue
            if hits is not None:
                hi = lo + len(hits)  # up to an event that may teach D or C: then chunks anew
            for i in range(lo, hi):
                r = records[i]
                d = None
                offset = r.offset
                held = None if decoded is None else decoded[i]
                try:
                    if held is None or held.row is None:
                        hit = None if hits is None else hits[i - lo]
                        if hit is None:
                            d = _loads(r.value, max_bytes)
                            row = _prediction(d, embedding_dims, counts, gate, sink)
                            model = d["model"]
                        else:
                            model, row = hit
                    else:
                        d = {"event_id": held.event_id, "model": held.model,
                             "model_version": held.model_version}
                        row, model = held.row, held.model
                        if _sized(held.model, row[2], row[5], row[7], row[8], row[9], held.dim,
                                  embedding_dims, counts, gate):
                            raise _Park(held.dim, row[1], row)
                except _Reject as rej:
                    failed.append((i, rej, d))
                except _Park as park:  # not the exception: its traceback holds the frames
                    pending.append((i, r, d["event_id"], d["model"], d["model_version"],
                                    park.dim, park.ts_ms, park.row))
                else:
                    parts = by_model.get(model)
                    if parts is None:
                        by_model[model] = [[(i, r.partition, offset, row)]]
                    elif type(parts[-1]) is list:
                        parts[-1].append((i, r.partition, offset, row))
                    else:
                        parts.append([(i, r.partition, offset, row)])
        buf = sink.finish()
        parked = _parked(pending, failed, buf, sink.errors) if pending else []
        del pending  # before the collector's return
        batches = {}
        for model, parts in by_model.items():
            cols = _columns(parts)
            if sink.errors:  # rows whose base64 is invalid fail first, as in _prediction
                cols = _valid_base64(model, cols, sink.errors, failed)
                if not cols[0]:
                    continue
            groups = ([(model, cols, embedding_dims.get(model, 0))] if gate is None else
                      _by_dimension(model, cols, gate))
            for name, group, dim in groups:
                batches[name], late = _batch(model, group, dim, counts.get(model, 0), buf)
                failed.extend(late)
        parts = cols = group = groups = None
        by_model.clear()  # the rows go now, not after the collector traversed them
    return PredictionDecode(batches, _rejections(records, failed), _positions(records), parked)


def _parked(pending: list[tuple], failed: list, buf: np.ndarray,
            errors: dict[int, ValueError]) -> list[Parked]:
    """The poll's parked events, minus those that fail the checks a parked event's row gets
    after the poll (``_parked_checks``: into ``failed``)."""
    rows = [p[7] for p in pending]
    late = _parked_checks(rows, [p[5] for p in pending], buf, errors)
    out = []
    for j, (i, r, event_id, model, version, dim, ts_ms, _) in enumerate(pending):
        if j in late:
            failed.append((i, late[j], {"event_id": event_id, "model": model,
                                        "model_version": version}))
        else:
            out.append(Parked(r.topic, r.partition, r.offset, r.key, r.value, event_id, model,
                              version, dim, ts_ms, rows[j]))
    return out


def _parked_checks(rows: list[tuple], dims: list[int], buf: np.ndarray,
                   errors: dict[int, ValueError]) -> dict[int, _Reject]:
    """Position -> rejection for parked rows that fail what ``_sized`` checks at once for a
    row that teaches, in its order: base64, probs, NaN (no field is learnt from a parked row,
    so the order of events does not matter). Replaces each row's offset in ``buf`` with a view
    of its bytes there (a parked row outlives the call)."""
    late: dict[int, _Reject] = {}
    at = [j for j, row in enumerate(rows) if type(row[9]) is int]
    for j in at:
        if rows[j][9] in errors:
            late[j] = _b64_reject(errors[rows[j][9]])
    has = [j for j, row in enumerate(rows) if row[7] is not None]
    for k in _suspect_probs([rows[j][7] for j in has]):
        rej = _probs_error(np.array(rows[has[k]][7], dtype=np.float64))
        if rej is not None:
            late.setdefault(has[k], rej)
    done: set[int] = set()
    if at and len({dims[j] for j in at}) == 1 and all(rows[j][8] == _F16 for j in at):
        finite = finite_rows(f16_rows(buf, [rows[j][9] for j in at], dims[at[0]]))
        for k in np.flatnonzero(~finite):
            late.setdefault(at[k], _nan_reject())
        done = set(at)
    for j in at:
        row = rows[j]
        rows[j] = (*row[:9], _raw(buf, row[9], row[8], dims[j]), *row[10:])
    for j, row in enumerate(rows):  # other formats, kept rows, several D: one by one
        if row[8] and j not in done and not _all_finite(row[8], row[9]):
            late.setdefault(j, _nan_reject())
    return late


def _suspect_probs(probs: list) -> Iterable[int]:
    """Positions of the probs that may fail ``_probs_error`` (a superset: a margin covers the
    rounding of a vectorised sum), for it to confirm; every one when they differ in length."""
    if not probs:
        return ()
    with np.errstate(over="ignore"):
        try:
            p = np.array(probs, dtype=np.float64)
        except ValueError:  # ragged: C is not known for a parked row
            return range(len(probs))
        tol = PROBS_SUM_ATOL + PROBS_SUM_ATOL_PER_CLASS * p.shape[1] - 1e-9
        return np.flatnonzero((p.min(axis=1) < 0) | ~(np.abs(p.sum(axis=1) - 1) <= tol))


def _positions(records: Sequence[RecordLike]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> its largest offset in ``records`` + 1, in order of first
    appearance: every record counts, accepted, parked or rejected. In C loops and numpy, once a
    call (a poll's records come from a few partitions, interleaved)."""
    topics = set(map(_TOPIC, records))
    if len(topics) != 1:
        where = list(zip(map(_TOPIC, records), map(_PARTITION, records)))
    else:
        where = list(map(_PARTITION, records))
    offsets = list(map(_OFFSET, records))
    keys = list(dict.fromkeys(where))
    if len(keys) <= 1:
        best = [max(offsets)] if keys else []
    else:
        ids = np.fromiter(map({pos: j for j, pos in enumerate(keys)}.__getitem__, where),
                          np.intp, len(where))
        last = np.full(len(keys), -1, dtype=np.int64)
        np.maximum.at(last, ids, np.array(offsets, dtype=np.int64))
        best = last.tolist()
    if len(topics) == 1:
        (topic,) = topics
        keys = [(topic, partition) for partition in keys]
    return {pos: offset + 1 for pos, offset in zip(keys, best, strict=True)}


def _columns(parts: list) -> tuple:
    """A model's rows as columns (index, partition, offset, then a row's 20 fields): the
    per-record path's lists of rows transposed, the fast path's blocks as they are, joined."""
    blocks = [part if type(part) is tuple else _transposed(part) for part in parts]
    if len(blocks) == 1:
        return blocks[0]
    # image / attrs with a fast chunk's KeyedRows: joined as _Segments (no dict built again)
    segments = {j: _segments([block[j] for block in blocks]) for j in (_IMAGE_COLUMN, _ATTRS_COLUMN)
                if any(type(block[j]) is KeyedRows for block in blocks)}
    out = [None if j in segments else list(column) for j, column in enumerate(blocks[0])]
    for block in blocks[1:]:  # a list's += takes a list in one copy (chain: item by item)
        for j, more in enumerate(block):
            if j not in segments:
                out[j] += more
    return tuple(segments.get(j, column) for j, column in enumerate(out))


class _Segments:
    """A column joined from parts (KeyedRows, or sequences of dicts and None) without
    rebuilding their dicts: ``_keyed_columns`` reads each part; indexing (``_subset``, rare)
    gives a part's item."""

    __slots__ = ("parts", "_ends")

    def __init__(self, parts: list) -> None:
        self.parts = parts
        self._ends = list(accumulate(map(len, parts)))

    def __len__(self) -> int:
        return self._ends[-1]

    def __getitem__(self, j: int) -> Any:
        k = bisect_right(self._ends, j)
        return self.parts[k][j - (self._ends[k - 1] if k else 0)]


def _segments(columns: list) -> Any:
    """``columns`` (a model's parts of one column) as one KeyedRows when they all are, of the
    same keys (the common case), else as :class:`_Segments` of runs of them."""
    parts: list = []
    for column in columns:
        last = parts[-1] if parts else None
        if type(column) is KeyedRows and type(last) is KeyedRows and last.keys == column.keys:
            last.values.extend(column.values)
        elif type(column) is KeyedRows:
            parts.append(KeyedRows(column.keys, list(column.values)))  # extended above
        elif last is not None and type(last) is not KeyedRows:
            last.extend(column)
        else:
            parts.append(list(column))
    return parts[0] if len(parts) == 1 else _Segments(parts)


def _keyed_columns(column: Any, missing: Any, convert: Any) -> dict[str, list | np.ndarray]:
    """key -> the column's values (``missing`` where a row lacks it, ``convert`` applied to
    each part's list), keys sorted: what one pass of ``[d.get(k, missing) for d in column]``
    per key gives, but KeyedRows read in one pass and no dict rebuilt."""
    if type(column) is KeyedRows:  # one model's fast chunks, the common case: no join
        values = convert(column.values)
        return {k: values[j::len(column.keys)] for j, k in enumerate(column.keys)}
    out: dict[str, list] = {}
    n = 0
    for part in (column.parts if type(column) is _Segments else [column]):
        table = part if type(part) is KeyedRows else keyed(part)
        if type(table) is KeyedRows:
            width, values = len(table.keys), convert(table.values)
            got = {k: values[j::width] for j, k in enumerate(table.keys)}
            size = len(values) // width
        else:
            rows = [d if d is not None else {} for d in part]
            got = {k: convert([d.get(k, missing) for d in rows]) for k in set().union(*rows)}
            size = len(rows)
        for k in got.keys() - out.keys():
            out[k] = [missing] * n
        for k, values in out.items():
            values += got[k] if k in got else [missing] * size
        n += size
    return {k: out[k] for k in sorted(out)}


def _transposed(rows: list) -> tuple:
    index, part, off, values = zip(*rows, strict=True)
    return (index, part, off, *zip(*values, strict=True))


def _subset(cols: tuple, keep: Sequence[int]) -> tuple:
    return tuple([column[j] for j in keep] for column in cols)


def _valid_base64(model: str, cols: tuple, errors: dict[int, ValueError], failed: list) -> tuple:
    """``cols`` minus the rows whose base64 text was invalid (their rejections into
    ``failed``)."""
    emb = cols[_EMB_COLUMN]
    bad = [j for j, at in enumerate(emb) if type(at) is int and at in errors]
    for j in bad:
        failed.append((cols[0][j], _b64_reject(errors[emb[j]]), _ids(model, cols, j)))
    if not bad:
        return cols
    drop = set(bad)
    return _subset(cols, [j for j in range(len(emb)) if j not in drop])


def _ids(model: str, cols: tuple, j: int) -> dict:
    return {"event_id": cols[3][j], "model": model, "model_version": cols[_VERSION_COLUMN][j]}


def _raw(buf: np.ndarray, emb: Any, kind: int, dim: int) -> Any:
    """A row's embedding payload with an offset in ``buf`` replaced by a view of its bytes."""
    if type(emb) is not int:
        return emb
    return buf[emb:emb + dim * (2 if kind == _F16 else 4)]


def _nan_reject() -> _Reject:
    return _Reject(NON_FINITE, "field 'embedding' holds NaN or Infinity (or a value beyond "
                               "float32)")


def _by_dimension(model: str, cols: tuple, gate: DimensionGate) -> list[tuple[str, tuple, int]]:
    """A model's rows split by their version's D (one group, the common case, unless versions
    of different D meet in one call); rows without an embedding join the first group."""
    versions, kinds = cols[_VERSION_COLUMN], cols[_KIND_COLUMN]
    dims = {version: gate.expected(model, version) or 0 for version in set(versions)}
    if len(dims) == 1:
        distinct = list(dims.values()) if any(kinds) else []
    else:
        distinct = list(dict.fromkeys(dims[v] for v, k in zip(versions, kinds, strict=True) if k))
    if len(distinct) <= 1:
        return [(model, cols, distinct[0] if distinct else 0)]
    groups: dict[int, list[int]] = {d: [] for d in distinct}
    for j, (v, k) in enumerate(zip(versions, kinds, strict=True)):
        groups[dims[v] if k else distinct[0]].append(j)
    return [(model if d == distinct[0] else f"{model}#{d}", _subset(cols, js), d)
            for d, js in groups.items()]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic GC off while a batch is decoded: the rows are thousands of acyclic containers
    that would trigger collections for nothing (~8% of the decode time)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _rejections(records: Sequence[RecordLike], failed: list) -> list[Rejection]:
    failed.sort(key=lambda f: f[0])
    out = []
    for i, rej, d in failed:
        r = records[i]
        out.append(Rejection(r.topic, r.partition, r.offset, r.key, r.value, rej.reason,
                             rej.detail, _readable(d, "event_id"), _readable(d, "model"),
                             _readable(d, "model_version")))
    return out


@np.errstate(over="ignore")  # probs beyond float32 (or summing beyond a double) are rejected
def _batch(model: str, cols: tuple, dim: int, n_classes: int,
           buf: np.ndarray) -> tuple[Batch, list]:
    """One model's batch from its columns (``_columns``), minus the rows that fail the
    vectorised checks (returned as ``(record index, _Reject, ids)``). ``buf``: the call's
    embedding bytes (Base64Buffer)."""
    (index, part, off, event_id, ts, version, latency, is_error, pred, conf, probs, kind, emb,
     image, attrs, cold, error_code, batch_size, gpu_mem, gpu_util, artifact, sha, uri) = cols
    n = len(index)
    late: dict[int, _Reject] = {}
    confidence = np.array(conf, dtype=np.float32)
    # probs are None or non-empty lists: all() is "none absent", in a C loop
    has_probs = np.ones(n, dtype=bool) if all(probs) else np.array(
        [p is not None for p in probs], dtype=bool)
    if has_probs.all():
        p64 = _rows_of(probs)
    elif has_probs.any():
        p64 = np.array([p for p in probs if p is not None], dtype=np.float64)
    else:
        p64 = np.zeros((0, 0))
    if p64.size:
        with_probs = np.flatnonzero(has_probs)
        tol = PROBS_SUM_ATOL + PROBS_SUM_ATOL_PER_CLASS * n_classes
        for j in np.flatnonzero((p64.min(axis=1) < 0) | (np.abs(p64.sum(axis=1) - 1) > tol)):
            late[int(with_probs[j])] = _probs_error(p64[j])
        derive = np.isnan(confidence[has_probs])
        if derive.any():
            confidence[with_probs[derive]] = p64[derive].max(axis=1)
    if len(p64) == n:
        prob_arr = p64.astype(np.float32)
    else:
        prob_arr = np.full((n, p64.shape[1]), np.nan, dtype=np.float32)
        prob_arr[has_probs] = p64
    kinds = np.array(kind, dtype=np.int8)
    has_emb = kinds != 0
    if has_emb.any():
        emb_arr = _embeddings(kinds, emb, dim, buf)
        for j in np.flatnonzero(has_emb & ~finite_rows(emb_arr)):
            late.setdefault(int(j), _nan_reject())
    else:
        emb_arr = np.zeros((n, 0), dtype=np.float32)
    image_cols = {k: np.array(v, dtype=np.float64)
                  for k, v in _keyed_columns(image, _NAN, list).items()}
    attr_cols = {k: _objects(v) for k, v in _keyed_columns(attrs, None, _strings).items()}
    extras = {
        "batch_size": _floats(batch_size),
        "cold_start": _floats(cold),
        "gpu_mem_mb": _floats(gpu_mem),
        "gpu_util": _floats(gpu_util),
        "artifact_id": _objects(artifact),
        "input_sha256": _objects(sha),
        "sample_uri": _objects(uri),
        "error_code": _objects(error_code),
        "_partition": np.array(part, dtype=np.int64),
        "_offset": np.array(off, dtype=np.int64),
    }
    batch = Batch(
        event_id=_objects(event_id), ts_ms=np.array(ts, dtype=np.int64),
        model=np.full(n, model, dtype=object), model_version=_objects(version),
        latency_ms=np.array(latency, dtype=np.float64),
        is_error=np.array(is_error, dtype=bool) if any(is_error) else np.zeros(n, dtype=bool),
        pred=np.array(pred, dtype=np.int32), confidence=confidence, probs=prob_arr,
        has_probs=has_probs, embedding=emb_arr, has_embedding=has_emb, image=image_cols,
        attrs=attr_cols, extras=extras)
    if not late:
        return batch, []
    keep = np.ones(n, dtype=bool)
    keep[list(late)] = False
    return batch.take(keep), [(index[j], rej, _ids(model, cols, j)) for j, rej in late.items()]


def _strings(values: list) -> list:
    """Attribute values as strings (numbers -> ``str(x)``), None kept."""
    if _STRING_OR_NONE.issuperset(map(type, values)):
        return values
    return [x if x is None or type(x) is str else str(x) for x in values]


def _objects(values: Sequence) -> np.ndarray:
    out = np.empty(len(values), dtype=object)  # None throughout
    if not _all_none(values):
        out[:] = values
    return out


def _floats(values: Sequence) -> np.ndarray:
    """float64 of numbers and None (NaN); an optional field absent throughout, the common case,
    without converting each None."""
    if _all_none(values):
        return np.full(len(values), _NAN)
    return np.array(values, dtype=np.float64)


def _all_none(values: Sequence) -> bool:
    # count compares by identity first: fast on None, and the first item decides most columns
    return bool(values) and values[0] is None and values.count(None) == len(values)


def _rows_of(probs: Sequence[list]) -> np.ndarray:
    """float64 [N, C] of N lists of C numbers (probs): chained into ``np.fromiter``, ~30% less
    than ``np.array`` of the nested lists (no shape discovery), the same values."""
    n_classes = len(probs[0])
    if set(map(len, probs)) != {n_classes}:
        return np.array(probs, dtype=np.float64)
    return np.fromiter(chain.from_iterable(probs), np.float64,
                       len(probs) * n_classes).reshape(len(probs), n_classes)


@functools.cache
def _f16_table() -> np.ndarray:
    """float32 value of every float16 bit pattern: a gather beats numpy's f16 cast ~2x."""
    return np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


def _embedding_rows(kind: int, payloads: list | tuple, dim: int) -> np.ndarray:
    if kind == _LIST:
        with np.errstate(over="ignore"):  # beyond float32 -> inf -> non_finite
            return np.array(payloads, dtype=np.float32)
    if kind == _F16:
        return np.take(_f16_table(), np.frombuffer(b"".join(payloads), "<u2").reshape(-1, dim))
    return np.frombuffer(b"".join(payloads), "<f4").reshape(-1, dim).astype(np.float32)


def _embeddings(kinds: np.ndarray, payloads: tuple, dim: int, buf: np.ndarray) -> np.ndarray:
    """[N, D]; rows without an embedding are NaN. A payload is an offset in ``buf`` (this
    call's), raw bytes (a parked row's) or a list. When every row is base64 f16 (the common
    wire format) the bytes are the array: float16, no cast (a float32 copy of a 20,000-event
    poll is 61 MB of fresh pages, 2.6-15 us an event), read-only as before; else one cast per
    format."""
    n = len(payloads)
    if n and (kinds == _F16).all():
        if set(map(type, payloads)) == {int}:
            out = f16_rows(buf, payloads, dim)
        else:
            out = np.frombuffer(b"".join([_raw(buf, p, _F16, dim) for p in payloads]),
                                "<f2").reshape(n, dim)
        out.flags.writeable = False
        return out
    payloads = tuple(_raw(buf, p, k, dim) for p, k in zip(payloads, kinds.tolist(), strict=True))
    out = None
    for kind in (_F16, _F32, _LIST):
        idx = np.flatnonzero(kinds == kind)
        if idx.size == n:  # one wire format for the whole model
            return _embedding_rows(kind, payloads, dim)
        if idx.size:
            if out is None:
                out = np.full((n, dim), np.nan, dtype=np.float32)
            out[idx] = _embedding_rows(kind, [payloads[i] for i in idx], dim)
    assert out is not None
    return out


# --- labels -----------------------------------------------------------------------------------

def _label(d: dict) -> tuple[str, int, int, str | None]:
    get = d.get
    if get("schema") != LABEL_SCHEMA:
        raise _Reject(BAD_SCHEMA, f"schema must be {LABEL_SCHEMA!r}, got {_show(get('schema'))}")
    event_id = get("event_id")
    if type(event_id) is not str or not 0 < len(event_id) <= MAX_EVENT_ID_CHARS:
        raise _check("event_id", event_id, f"a string of 1 to {MAX_EVENT_ID_CHARS} characters",
                     type(event_id) is str)
    label = get("label")
    if type(label) is not int or not 0 <= label <= _INT32_MAX:
        raise _check("label", label, f"an integer in [0, {_INT32_MAX}]", type(label) is int)
    ts = get("ts")
    if type(ts) is not int or not 0 <= ts < _MAX_TS_MS:
        ts = int(ts) if type(ts) is float and 0 <= ts < _MAX_TS_MS else _ts(ts)
    source = get("source")
    if source is not None and type(source) is not str:
        raise _check("source", source, "a string", False)
    return event_id, label, ts, source


def decode_labels(records: Iterable[RecordLike], *,
                  max_bytes: int = MAX_MESSAGE_BYTES) -> LabelDecode:
    """Decode label records (``vit.label/v1``); same reason codes as predictions.

    >>> from types import SimpleNamespace as Rec
    >>> from monitor.core.ingest.events import encode_label
    >>> vals = [encode_label("e1", 3, "2026-01-01T00:00:00Z", "human"), b'{"label": 1}']
    >>> out = decode_labels([Rec(topic="vit.labels", partition=2, offset=o, key=None, value=v,
    ...                          timestamp_ms=0) for o, v in enumerate(vals)])
    >>> out.event_id.tolist(), out.label.tolist(), out.ts_ms.tolist(), out.source.tolist()
    (['e1'], [3], [1767225600000], ['human'])
    >>> [(r.offset, r.reason) for r in out.rejected]
    [(1, 'bad_schema')]
    """
    records = records if isinstance(records, Sequence) else list(records)
    rows: list[tuple] = []
    failed: list[tuple[int, _Reject, dict | None]] = []
    positions: dict[tuple[str, int], int] = {}
    with _gc_paused():
        for i, r in enumerate(records):
            d = None
            try:
                d = _loads(r.value, max_bytes)
                rows.append((*_label(d), r.partition, r.offset))
            except _Reject as rej:
                failed.append((i, rej, d))
            pos = (r.topic, r.partition)
            if positions.get(pos, -1) <= r.offset:
                positions[pos] = r.offset + 1
    event_id, label, ts, source, part, off = zip(*rows, strict=True) if rows else ((),) * 6
    return LabelDecode(
        event_id=_objects(event_id), label=np.array(label, dtype=np.int64),
        ts_ms=np.array(ts, dtype=np.int64), source=_objects(source),
        partition=np.array(part, dtype=np.int64), offset=np.array(off, dtype=np.int64),
        rejected=_rejections(records, failed), positions=positions)
