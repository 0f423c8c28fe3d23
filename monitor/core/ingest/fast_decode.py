"""The fast path of ``decode_predictions`` (``monitor.core.ingest.decode``): the common wire
format parsed *and* type-checked in C by ``msgspec``, straight into a validated row.

What is fast: a message that is a ``vit.prediction/v1`` ``ok`` event with an int ``ts``, an
unpadded base64 ``f16`` ``embedding_b64``, ``probs`` in [0, 1], the optional fields absent,
null or well typed, no field outside the contract, no backslash anywhere (no JSON escape), and
whose model's D and C are already known (from the gate or the call's ``embedding_dims`` /
``class_counts``) and match. Such a message gives exactly the row ``_prediction`` would give
(the same Python types, so the same columns), and, like a row of the slow path, its base64
text is decoded with the call's buffer and its probs sum and embedding NaN are checked
vectorised by ``_batch``: those checks stay where they are.

Everything else defers: :meth:`FastRows.row` returns None and the record takes the per-record
path (``_loads`` / ``_prediction``), which finds the reason or the row. The fast path only ever
*accepts*; it never rejects, parks or learns D or C, so the outcome of a call is the slow
path's by construction as long as an accepted message is one the slow path accepts with the
same row. Why each case defers:

- a backslash: an escape may hide ``\\u0000`` or a lone surrogate (which orjson refuses);
- an unknown field: its value might be a number orjson refuses (``1e400``) and msgspec skips;
- an int outside int64: orjson turns it into a float (so ``str()`` of an attribute, or an
  ``error_code``, would differ); a float beyond a double: msgspec refuses it as orjson does;
- a duplicate key: msgspec validates every occurrence, so it defers when any is invalid and
  otherwise keeps the last, as orjson does;
- string ``ts``, float ``ts``, error events, JSON-list or ``f32`` or padded embeddings,
  ``embedding`` beside ``embedding_b64``: rarer formats the slow path handles;
- an unknown D or C (an event that would teach or be parked), or a size that differs.

``decode_predictions(..., fast=False)`` turns the fast path off (the equivalence tests compare
both). Without msgspec installed the fast path is off.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from typing import Annotated, Any, Literal

try:
    import msgspec
except ImportError:  # pragma: no cover - a dependency; the slow path decodes alone without it
    msgspec = None

AVAILABLE = msgspec is not None
#: Records per :meth:`FastRows.chunk` (a chunk with one record the fast path cannot take goes
#: record by record, each still trying :meth:`FastRows.row`).
CHUNK = 128
_NAN = float("nan")
_F16 = 1  # decode.py's embedding kind for base64 float16 (kept in sync by the tests)
_UNKNOWN = object()

if msgspec is not None:
    _Meta = msgspec.Meta
    # orjson keeps an integer in [-2**63, 2**64) an int and turns a larger one into a float;
    # the fast path takes int64 only, so every int it accepts is the int orjson gives.
    _Int = Annotated[int, _Meta(ge=-2**63, le=2**63 - 1)]
    _Number = _Int | float  # msgspec refuses floats beyond a double, as orjson does
    _Unit = Annotated[int, _Meta(ge=0, le=1)] | Annotated[float, _Meta(ge=0, le=1)]

    class _Event(msgspec.Struct, forbid_unknown_fields=True):
        """The common wire format; each constraint one of ``_prediction``'s checks (or
        stricter)."""

        schema: Literal["vit.prediction/v1"]  # PREDICTION_SCHEMA (a test keeps them equal)
        event_id: Annotated[str, _Meta(min_length=1, max_length=128)]
        ts: Annotated[int, _Meta(ge=0, lt=253_402_300_800_000)]
        model: Annotated[str, _Meta(min_length=1)]
        model_version: Annotated[str, _Meta(min_length=1)]
        latency_ms: Annotated[int, _Meta(ge=0, le=2**63 - 1)] | Annotated[float, _Meta(ge=0)]
        status: Literal["ok"]
        pred: Annotated[int, _Meta(ge=0, le=2**31 - 1)]
        probs: Annotated[list[_Unit], _Meta(min_length=1)]
        embedding_b64: Annotated[str, _Meta(min_length=8)]
        embedding_dtype: Literal["f16"]
        confidence: _Unit | None = None
        image: dict[str, _Number | None] | None = None
        attrs: dict[str, str | _Number | None] | None = None
        error_code: str | _Int | None = None
        batch_size: _Number | None = None
        gpu_mem_mb: _Number | None = None
        gpu_util: _Number | None = None
        cold_start: bool | _Number | None = None
        artifact_id: str | None = None
        input_sha256: str | None = None
        sample_uri: str | None = None

    _DECODE = msgspec.json.Decoder(_Event).decode
    _ERRORS: tuple[type[Exception], ...] = (msgspec.ValidationError, msgspec.DecodeError)


class FastRows:
    """One decode call's fast path: :meth:`row` per record, with the call's D and C (read,
    never written: a record that would teach them defers) and its base64 buffer's ``add``."""

    __slots__ = ("_dims", "_counts", "_gate", "_known", "_add", "_max_bytes")

    def __init__(self, dims: MutableMapping[str, int], counts: MutableMapping[str, int],
                 gate: Any, add: Callable[[str], int], max_bytes: int) -> None:
        self._dims, self._counts, self._gate = dims, counts, gate
        self._known: dict[tuple[str, str], int | None] = {}  # the gate's answers this call
        self._add = add
        self._max_bytes = max_bytes

    def chunk(self, records: Sequence[Any], first: int) -> dict[str, list] | None:
        """model -> ``(index, partition, offset, row)`` of every record, index from ``first``,
        in stream order, when *all* of ``records`` take the fast path; else None (nothing was
        added to the buffer). The per-record checks of :meth:`row`, a pass each over the
        chunk."""
        mb = self._max_bytes
        values = [r.value for r in records]
        if not all(v and len(v) <= mb and b"\\" not in v for v in values):
            return None
        try:
            evs = [_DECODE(v) for v in values]
        except _ERRORS:
            return None
        sizes = {}
        for key in {(ev.model, ev.model_version) for ev in evs}:
            known, n_classes = self._expected(*key), self._counts.get(key[0])
            if not known or n_classes is None or known % 3:
                return None
            sizes[key] = (known // 3 * 8, n_classes)  # base64 characters, classes
        if not all((len(ev.embedding_b64), len(ev.probs)) == sizes[ev.model, ev.model_version]
                   and ev.pred < sizes[ev.model, ev.model_version][1]
                   and ev.embedding_b64[-1] != "=" for ev in evs):
            return None
        add = self._add
        rows = [(ev.event_id, ev.ts, ev.model_version, ev.latency_ms, False, ev.pred,
                 _NAN if ev.confidence is None else ev.confidence, ev.probs, _F16,
                 add(ev.embedding_b64), _present(ev.image), _present(ev.attrs), ev.cold_start,
                 str(ev.error_code) if type(ev.error_code) is int else ev.error_code,
                 ev.batch_size, ev.gpu_mem_mb, ev.gpu_util, ev.artifact_id, ev.input_sha256,
                 ev.sample_uri) for ev in evs]
        located = zip(range(first, first + len(rows)), [r.partition for r in records],
                      [r.offset for r in records], rows)
        if len(sizes) == 1:
            return {evs[0].model: list(located)}
        out: dict[str, list] = {}
        for ev, entry in zip(evs, located):
            out.setdefault(ev.model, []).append(entry)
        return out

    def _expected(self, model: str, version: str) -> int | None:
        """The (model, version)'s D: the gate's (asked once a call) or the call's."""
        gate = self._gate
        if gate is None:
            return self._dims.get(model)
        known = self._known.get((model, version), _UNKNOWN)
        if known is _UNKNOWN:
            known = self._known[(model, version)] = gate.expected(model, version)
        return known

    def row(self, record: Any) -> tuple[str, tuple] | None:
        """(model, the row ``_prediction`` gives) for one record in the common format whose
        model's D and C match; None when it must take the slow path."""
        got = self.chunk((record,), 0)
        if got is None:
            return None
        ((model, ((_, _, _, row),)),) = got.items()
        return model, row


def _present(fields: dict | None) -> dict | None:
    """``image`` / ``attrs`` without their null entries (null means absent), as
    ``_prediction`` keeps them: the same dict when none is null."""
    if fields is None or None not in fields.values():
        return fields
    return {k: x for k, x in fields.items() if x is not None}
