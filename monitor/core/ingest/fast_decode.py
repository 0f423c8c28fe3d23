"""The fast path of ``decode_predictions`` (``monitor.core.ingest.decode``): the common wire
format parsed *and* type-checked in C by ``msgspec``, straight into a validated row.

What is fast: a message that is a ``vit.prediction/v1`` ``ok`` event with an int ``ts``, an
unpadded base64 ``f16`` ``embedding_b64``, ``probs`` in [0, 1], the optional fields absent,
null or well typed (no null inside ``image`` or ``attrs``: the slow path drops it, the fast
path keeps the dict as it is), no field outside the contract, no backslash anywhere (no JSON
escape), and whose model's D and C are already known (from the gate or the call's
``embedding_dims`` / ``class_counts``) and match. Such a message gives exactly the row
``_prediction`` would give (the same Python types, so the same columns), and, like a row of the
slow path, its base64 text is decoded with the call's buffer and its probs sum and embedding
NaN are checked vectorised by ``_batch``: those checks stay where they are. A chunk that is fast throughout
comes as columns (a block: those rows transposed, built a column at a time), which is what
``_batch`` reads, so no row tuple is built and taken apart again.

Everything else defers: :meth:`FastRows.chunk` gives None for it and the record takes the
per-record path (``_loads`` / ``_prediction``), which finds the reason or the row. The fast path
only ever *accepts*; it never rejects, parks or learns D or C (the D and C it reads were known
before the chunk and a later record cannot change them), so the outcome of a call is the slow
path's as long as an accepted message is one the slow path accepts with the same row. Rows keep
stream order; only the order of the embeddings in the base64 buffer may differ (a batch reads
them by offset). Why each case defers:

- a backslash: an escape may hide ``\\u0000`` or a lone surrogate (which orjson refuses);
- an unknown field: its value might be a number orjson refuses (``1e400``) and msgspec skips;
- an int outside int64: orjson turns it into a float (so ``str()`` of an attribute, or an
  ``error_code``, would differ); a float beyond a double: msgspec refuses it as orjson does;
- a duplicate key: msgspec validates every occurrence, so it defers when any is invalid and
  otherwise keeps the last, as orjson does;
- string ``ts``, float ``ts``, error events, JSON-list or ``f32`` or padded embeddings,
  ``embedding`` beside ``embedding_b64``: rarer formats the slow path handles;
- an unknown D or C (an event that would teach or be parked), or a size that differs.

Also slow: settling parked events (``decoded=``), and the chunks after one where no record
took the fast path (see :class:`FastRows`). ``decode_predictions(..., fast=False)`` turns the
fast path off (``tests/test_decode_fast.py`` compares both). Without msgspec it is off.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from itertools import chain, repeat
from operator import attrgetter, contains, itemgetter
from typing import Annotated, Any, Literal

try:
    import msgspec
except ImportError:  # pragma: no cover - a dependency; the slow path decodes alone without it
    msgspec = None

AVAILABLE = msgspec is not None
#: Records per :meth:`FastRows.chunk`.
CHUNK = 128
_NAN = float("nan")
_F16 = 1  # decode.py's embedding kind for base64 float16 (kept in sync by the tests)
_UNKNOWN = object()
_STRING_OR_NONE = frozenset((str, type(None)))
_NONE_TYPE = type(None)
_VALUE, _PARTITION, _OFFSET = attrgetter("value"), attrgetter("partition"), attrgetter("offset")
_MODEL, _VERSION = attrgetter("model"), attrgetter("model_version")
_LAST = itemgetter(-1)

if msgspec is not None:
    _Meta = msgspec.Meta
    # orjson keeps an integer in [-2**63, 2**64) an int and turns a larger one into a float;
    # the fast path takes int64 only, so every int it accepts is the int orjson gives.
    _Int = Annotated[int, _Meta(ge=-2**63, le=2**63 - 1)]
    _Number = _Int | float  # msgspec refuses floats beyond a double, as orjson does
    _Unit = Annotated[int, _Meta(ge=0, le=1)] | Annotated[float, _Meta(ge=0, le=1)]

    class _Common(msgspec.Struct, forbid_unknown_fields=True):
        """The common wire format; each constraint one of ``_prediction``'s checks (or
        stricter). Without the optional fields that producers mostly leave out: a message that
        has one fails here and is decoded as an :class:`_Event`; one that does not reads them
        as None (class attributes), and its chunk's columns of them are built without a pass
        over the events."""

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
        # no null inside (the slow path drops it): the dict is the row's as it is
        image: dict[str, _Number] | None = None
        attrs: dict[str, str | _Number] | None = None
        error_code = batch_size = gpu_mem_mb = gpu_util = cold_start = None
        artifact_id = input_sha256 = sample_uri = None

    class _Event(_Common, forbid_unknown_fields=True):
        """The common wire format with every optional field (after ``_Common``'s, in order)."""

        error_code: str | _Int | None = None
        batch_size: _Number | None = None
        gpu_mem_mb: _Number | None = None
        gpu_util: _Number | None = None
        cold_start: bool | _Number | None = None
        artifact_id: str | None = None
        input_sha256: str | None = None
        sample_uri: str | None = None

    _DECODE = msgspec.json.Decoder(_Event).decode
    _DECODE_COMMON = msgspec.json.Decoder(_Common).decode
    _ERRORS: tuple[type[Exception], ...] = (msgspec.ValidationError, msgspec.DecodeError)


class FastRows:
    """One decode call's fast path, a chunk of records at a time, with the call's D and C (read,
    never written: a record that would teach them defers) and its base64 buffer's ``add``.

    A chunk where no record took the fast path (a version not admitted yet, JSON-list
    embeddings) makes the next 1, 2, 4 ... 16 chunks skip it: a message the fast path cannot
    take is otherwise parsed twice."""

    __slots__ = ("_dims", "_counts", "_gate", "_known", "_add", "_add_run", "_max_bytes", "_skip",
                 "_backoff", "_taught", "_ahead", "_common")

    def __init__(self, dims: MutableMapping[str, int], counts: MutableMapping[str, int],
                 gate: Any, add: Callable[[str], int],
                 add_run: Callable[[Sequence[str], int], Sequence[int]], max_bytes: int) -> None:
        self._dims, self._counts, self._gate = dims, counts, gate
        self._known: dict[tuple[str, str], int | None] = {}  # the gate's answers this call
        self._add, self._add_run = add, add_run
        self._max_bytes = max_bytes
        self._skip = 0  # chunks left to skip
        self._backoff = 1
        self._taught: set[tuple[str, str]] = set()  # (model, version)s given an event to teach
        self._ahead: tuple[int, list] = (-1, [])  # (index, events parsed from there) for chunk
        self._common = True  # try _Common first (until a chunk is all _Events)

    def chunk(self, records: Sequence[Any], first: int) -> dict[str, tuple] | list:
        """When every one of ``records`` takes the fast path: model -> its block, the columns
        ``decode._batch`` reads (index from ``first``, partition, offset, then the 20 fields
        of ``_prediction``'s row, its base64 text added to the buffer), in stream order. Else,
        aligned with the first records (all of them, or up to and including the first that may
        teach its model's D or C, once per (model, version) and call, so that the events after
        it are fast): ``(model, row)`` of those that take it, None for the others (the slow
        path's)."""
        if self._skip:
            self._skip -= 1
            return [None] * len(records)
        mb = self._max_bytes
        ahead, self._ahead = self._ahead, (-1, [])
        reuse = ahead[1][:len(records)] if ahead[0] == first else []
        values = list(map(_VALUE, records[len(reuse):]))
        try:
            # C loops, no Python call per record; 92 is a backslash: an int needle goes
            # straight to memchr, a bytes one first fails as an int (an exception raised)
            if (not all(values) or max(map(len, values), default=0) > mb
                    or any(map(contains, values, repeat(92)))):
                raise ValueError
            evs = self._decode(values)
        except (ValueError, *_ERRORS):
            evs = [_decoded(v, mb) for v in values]
        if reuse:
            evs = reuse + evs
        sizes: dict[tuple[str, str], tuple[int, int] | None] = {}
        teach = set()
        keys = _keys(evs)
        for key in keys:
            known, n_classes = self._expected(*key), self._counts.get(key[0])
            ok = known and n_classes is not None and not known % 3
            sizes[key] = (known // 3 * 8, n_classes) if ok else None  # base64 characters, C
            if (not ok and (self._gate is None or known) and (not known or n_classes is None)
                    and key not in self._taught):
                teach.add(key)
        if teach:  # up to the first event that may teach D or C (once a key): then on anew
            end = next(j for j, ev in enumerate(evs)
                       if ev is not None and (ev.model, ev.model_version) in teach)
            self._taught.add((evs[end].model, evs[end].model_version))
            self._ahead = (first + end + 1, evs[end + 1:])  # parsed already: for the next call
            evs, records = evs[:end], records[:end]
        if len(sizes) == 1 and not teach and all(evs) and _all_fit(evs, *sizes.values()):
            self._backoff = 1
            return {evs[0].model: self._block(evs, records, range(first, first + len(evs)))}
        fits = [ev is not None and (size := sizes[ev.model, ev.model_version]) is not None
                and len(ev.embedding_b64) == size[0] and len(ev.probs) == size[1]
                and ev.pred < size[1] and ev.embedding_b64[-1] != "=" for ev in evs]
        if all(fits) and not teach:
            self._backoff = 1
            if len({ev.model for ev in evs}) == 1:
                return {evs[0].model: self._block(evs, records, range(first, first + len(evs)))}
            at: dict[str, list[int]] = {}
            for j, ev in enumerate(evs):
                at.setdefault(ev.model, []).append(j)
            return {model: self._block([evs[j] for j in js], [records[j] for j in js],
                                       [first + j for j in js])
                    for model, js in at.items()}
        if not any(fits) and not teach:
            self._skip, self._backoff = self._backoff, min(2 * self._backoff, 16)
            return [None] * len(records)
        taken = [ev for ev, fit in zip(evs, fits, strict=True) if fit]
        rows = iter(self._rows(taken))
        return [(ev.model, next(rows)) if fit else None
                for ev, fit in zip(evs, fits, strict=True)] + [None] * bool(teach)

    def _decode(self, values: list[bytes]) -> list:
        """The chunk's events (raises as the decoder does for any one of them): as
        ``_Common`` while chunks are, else as ``_Event``."""
        if self._common:
            try:
                return list(map(_DECODE_COMMON, values))
            except _ERRORS:
                evs = list(map(_DECODE, values))  # raises when one is not an _Event either
                self._common = False  # producers that send optional fields: no double parse
                return evs
        return list(map(_DECODE, values))

    def _block(self, evs: list, records: Sequence[Any], index: Sequence[int]) -> tuple:
        """The columns of events that fit (``chunk``'s block): ``_rows`` transposed, built a
        column at a time (``decode._batch`` reads columns: no row tuples to build and undo)."""
        n = len(evs)
        texts = [ev.embedding_b64 for ev in evs]
        if len(set(map(len, texts))) == 1:
            at: Sequence[int] = self._add_run(texts, len(texts[0]))
        else:  # versions of another D
            at = list(map(self._add, texts))
        if set(map(type, evs)) == {_Common}:  # no optional field: None throughout
            cold, codes, batch_size, gpu_mem, gpu_util, artifact, sha, uri = (
                [None] * n for _ in range(8))
        else:
            codes = [ev.error_code for ev in evs]
            if not _STRING_OR_NONE.issuperset(map(type, codes)):
                codes = [str(c) if type(c) is int else c for c in codes]
            cold, batch_size, gpu_mem, gpu_util, artifact, sha, uri = (
                [ev.cold_start for ev in evs], [ev.batch_size for ev in evs],
                [ev.gpu_mem_mb for ev in evs], [ev.gpu_util for ev in evs],
                [ev.artifact_id for ev in evs], [ev.input_sha256 for ev in evs],
                [ev.sample_uri for ev in evs])
        confidence = [ev.confidence for ev in evs]
        types = set(map(type, confidence))
        if _NONE_TYPE in types:  # absent: max(probs), derived in _batch from this NaN
            confidence = ([_NAN] * n if len(types) == 1 else
                          [_NAN if c is None else c for c in confidence])
        return (index, list(map(_PARTITION, records)), list(map(_OFFSET, records)),
                [ev.event_id for ev in evs], [ev.ts for ev in evs],
                [ev.model_version for ev in evs], [ev.latency_ms for ev in evs], [False] * n,
                [ev.pred for ev in evs], confidence, [ev.probs for ev in evs], [_F16] * n, at,
                keyed([ev.image for ev in evs]), keyed([ev.attrs for ev in evs]), cold, codes,
                batch_size,
                gpu_mem, gpu_util, artifact, sha, uri)

    def _rows(self, evs: list) -> list[tuple]:
        """The rows of events that fit, in stream order (their base64 added in that order)."""
        add = self._add
        return [(ev.event_id, ev.ts, ev.model_version, ev.latency_ms, False, ev.pred,
                 _NAN if ev.confidence is None else ev.confidence, ev.probs, _F16,
                 add(ev.embedding_b64), ev.image, ev.attrs, ev.cold_start,
                 str(ev.error_code) if type(ev.error_code) is int else ev.error_code,
                 ev.batch_size, ev.gpu_mem_mb, ev.gpu_util, ev.artifact_id, ev.input_sha256,
                 ev.sample_uri) for ev in evs]

    def _expected(self, model: str, version: str) -> int | None:
        """The (model, version)'s D: the gate's (asked once a call) or the call's."""
        gate = self._gate
        if gate is None:
            return self._dims.get(model)
        known = self._known.get((model, version), _UNKNOWN)
        if known is _UNKNOWN:
            known = self._known[(model, version)] = gate.expected(model, version)
        return known


def _decoded(value: bytes | None, max_bytes: int) -> Any:
    """The message as an ``_Event``, or None when it is not one (or not for the fast path)."""
    if not value or len(value) > max_bytes or b"\\" in value:
        return None
    try:
        return _DECODE(value)
    except _ERRORS:
        return None


class KeyedRows:
    """Dicts with the same keys as one row-major list of their values (``keys`` sorted): a fast
    chunk's ``image`` / ``attrs`` column, read while the chunk is in cache (and its dicts die
    with it); ``decode._batch`` makes columns of ``values`` directly. To any other reader, a
    sequence of the dicts (their keys sorted)."""

    __slots__ = ("keys", "values")

    def __init__(self, keys: tuple[str, ...], values: list) -> None:
        self.keys, self.values = keys, values

    def __len__(self) -> int:
        return len(self.values) // len(self.keys)

    def __getitem__(self, j: int) -> dict:
        width = len(self.keys)
        return dict(zip(self.keys, self.values[j * width:(j + 1) * width], strict=True))

    def __iter__(self) -> Any:
        return map(self.__getitem__, range(len(self)))


def keyed(dicts: list) -> KeyedRows | list:
    """``dicts`` as :class:`KeyedRows` when none is None or empty and all have the same keys (one
    pass, itemgetter in C), else as they are."""
    if not all(dicts):
        return dicts
    keys = tuple(sorted(dicts[0]))
    if set(map(len, dicts)) != {len(keys)}:
        return dicts
    try:
        rows = list(map(itemgetter(*keys), dicts))
    except KeyError:  # a dict of that size with another key
        return dicts
    return KeyedRows(keys, rows if len(keys) == 1 else list(chain.from_iterable(rows)))


def _keys(evs: list) -> set[tuple[str, str]]:
    """The (model, version)s of the events that are not None: one model and version (the
    common case) found without a tuple per event."""
    if not all(evs):
        return {(ev.model, ev.model_version) for ev in evs if ev is not None}
    models, versions = set(map(_MODEL, evs)), set(map(_VERSION, evs))
    if len(models) == len(versions) == 1:
        return {(*models, *versions)}
    return set(zip(map(_MODEL, evs), map(_VERSION, evs)))


def _all_fit(evs: list, size: tuple[int, int] | None) -> bool:
    """Whether every event of one (model, version) of known D and C fits them (``chunk``'s
    ``fits`` for all at once, in C loops): base64 of the size, unpadded, C probs, pred < C."""
    if size is None:
        return False
    texts = [ev.embedding_b64 for ev in evs]
    return (set(map(len, texts)) == {size[0]} and "=" not in map(_LAST, texts)
            and set(map(len, [ev.probs for ev in evs])) == {size[1]}
            and max([ev.pred for ev in evs]) < size[1])
