"""Example inputs per (model, version, slice, window): a bottom-k sample of the events that carry a
``sample_uri``, so the UI can show what the model saw -- reference beside window -- without
keeping a pointer per event.

The sample keeps the ``k`` events with the smallest 63-bit FNV-1a hash of their ``event_id``: a
uniform, deterministic sample whose ``merge`` (bottom-k of the union) is associative and
commutative, whatever the checkpoint boundaries or partition split. The state stores pointers
(``sample_uri``, ``input_sha256``) and the prediction, never an image. Descriptive, not a test:
the finding is ``ok`` with the sample size, or ``insufficient_data``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from monitor.contract import Batch, DataclassStateCodec, EvalContext, Finding, Reference, Status

_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


def id_hash(ids: np.ndarray) -> np.ndarray:
    """63-bit FNV-1a of each string, vectorised over the batch (the same id always hashes alike).

    >>> h = id_hash(np.array(["a", "b", "a"], dtype=object))
    >>> bool(h[0] == h[2] != h[1]), bool((h >= 0).all())
    (True, True)
    >>> bool(id_hash(np.array(["a", "a-much-longer-id"], dtype=object))[0] == h[0])
    True
    """
    raw = np.char.encode(ids.astype(str), "utf-8")
    width = max(raw.dtype.itemsize, 1)
    lens = np.char.str_len(raw)
    codes = np.frombuffer(raw.astype(f"S{width}").tobytes(), np.uint8).reshape(len(ids), width)
    h = np.full(len(ids), _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(width):
            h = np.where(j < lens, (h ^ codes[:, j].astype(np.uint64)) * _FNV_PRIME, h)
        # murmur3's finaliser: ids that differ only in their last character spread out too
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
    return (h >> np.uint64(1)).astype(np.int64)


@dataclass(frozen=True, slots=True)
class ExampleState:
    seen: int = 0  # events with a sample_uri observed
    hash: list[int] = field(default_factory=list)  # ascending
    event_id: list[str] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)  # event time
    uri: list[str] = field(default_factory=list)
    sha256: list[str] = field(default_factory=list)  # "" when absent
    pred: list[int] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)  # NaN when absent

    def __eq__(self, other: object) -> bool:  # lists and their decoded tuples compare alike
        return isinstance(other, ExampleState) and self.seen == other.seen and all(
            list(getattr(self, c)) == list(getattr(other, c)) for c in _COLUMNS)


_COLUMNS = ("hash", "event_id", "ts_ms", "uri", "sha256", "pred", "confidence")


def _bottom(k: int, seen: int, rows: list[tuple]) -> ExampleState:
    unique = sorted({r[1]: r for r in rows}.values(), key=lambda r: (r[0], r[1]))[:k]
    cols = [list(c) for c in zip(*unique, strict=True)] if unique else [[] for _ in _COLUMNS]
    return ExampleState(seen, *cols)


def _rows(s: ExampleState) -> list[tuple]:
    return list(zip(*(getattr(s, c) for c in _COLUMNS), strict=True))


class Examples(DataclassStateCodec):
    """A small uniform sample of example inputs (pointers only) per window and slice.

    Example
    -------
    >>> from monitor.testing import make_context, synthetic_batch
    >>> det = Examples(k=4)
    >>> s = det.observe(det.empty(), synthetic_batch(n=200, seed=0))
    >>> s.seen, len(s.uri), s.uri[0].startswith("file://")
    (200, 4, True)
    >>> det.evaluate(s, make_context())[0].status.value
    'ok'
    """

    name: ClassVar[str] = "examples"
    version: ClassVar[int] = 1
    state_type: ClassVar[type] = ExampleState
    wide_columns: ClassVar[frozenset[str]] = frozenset({"attrs"})  # extras ride with attrs

    def __init__(self, k: int = 8, min_samples: int | None = None) -> None:
        if k < 1:
            raise ValueError("k must be >= 1")
        self.k = int(k)
        self.min_samples = min_samples

    def empty(self) -> ExampleState:
        return ExampleState()

    def observe(self, state: ExampleState, batch: Batch) -> ExampleState:
        return self.observe_groups([state], batch, [np.arange(len(batch))], None)[0]

    def observe_groups(self, states: Sequence[ExampleState], batch: Batch,
                       groups: Sequence[np.ndarray],
                       reference: Reference | None = None) -> list[ExampleState]:
        """Every group at once: which events are examples, and their id hashes, once a batch."""
        uris = batch.extras.get("sample_uri")
        if uris is None or len(batch) == 0:
            return list(states)
        has = np.fromiter((isinstance(u, str) and bool(u) for u in uris), bool, len(batch))
        usable = has & ~batch.is_error  # an example is a served prediction
        if not usable.any():
            return list(states)
        hashes = np.zeros(len(batch), np.int64)
        hashes[usable] = id_hash(batch.event_id[usable])
        sha = batch.extras.get("input_sha256")
        out = []
        for state, group in zip(states, groups, strict=True):
            rows = group[usable[group]]
            if len(rows) == 0:
                out.append(state)
                continue
            h = hashes[rows]
            top = rows[np.argsort(h, kind="stable")[: self.k]]
            new = [(int(hashes[i]), str(batch.event_id[i]), int(batch.ts_ms[i]), str(uris[i]),
                    str(sha[i]) if sha is not None and sha[i] else "", int(batch.pred[i]),
                    float(batch.confidence[i])) for i in top.tolist()]
            out.append(_bottom(self.k, state.seen + len(rows), _rows(state) + new))
        return out

    def merge(self, a: ExampleState, b: ExampleState) -> ExampleState:
        return _bottom(self.k, a.seen + b.seen, _rows(a) + _rows(b))

    def evaluate(self, state: ExampleState, context: EvalContext) -> tuple[Finding, ...]:
        need = self.min_samples or context.min_samples
        if state.seen < need:
            return (Finding.insufficient(self, state.seen, need),)
        return (Finding(self.name, self.version, Status.OK, n=state.seen, test="summary",
                        details={"examples": len(state.uri)}),)
