"""One fuzzing step: decode messages with the real decoder and with the oracle, and compare.

:func:`check_predictions` and :func:`check_labels` raise :class:`Mismatch` (an AssertionError)
when the decoder disagrees with :mod:`tests.fuzz_oracle`; any other exception is the decoder's
own and escapes as it is. Both the test (``tests/test_decode_fuzz.py``) and the long campaign
(``bench/fuzz_decode.py``) call these and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from monitor.contract import Batch
from monitor.core.ingest.decode import REASONS, decode_labels, decode_predictions
from monitor.core.ingest.records import Record
from tests import fuzz_mutators as mutators
from tests import fuzz_oracle as oracle

_EXTRAS = ("batch_size", "gpu_mem_mb", "gpu_util", "cold_start")
_STRINGS = ("artifact_id", "input_sha256", "sample_uri", "error_code")


class Mismatch(AssertionError):
    """The decoder and the oracle disagree about one message."""

    def __init__(self, what: str, value: bytes | None) -> None:
        super().__init__(f"{what}; message: {value!r:.300}")
        self.value = value


def _records(values: Sequence[bytes | None], topic: str) -> list[Record]:
    return [Record(topic, 0, i, None, v, 0) for i, v in enumerate(values)]


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, None equal to NaN (an absent number is a NaN column)."""
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if a is None or b is None:
        a, b = (math.nan if a is None else a), (math.nan if b is None else b)
    if isinstance(a, float | np.floating) or isinstance(b, float | np.floating):
        a, b = float(a), float(b)
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def _row(batch: Batch, j: int) -> dict[str, Any]:
    ex = batch.extras
    return {
        "event_id": batch.event_id[j], "ts_ms": int(batch.ts_ms[j]), "model": batch.model[j],
        "model_version": batch.model_version[j], "latency_ms": float(batch.latency_ms[j]),
        "is_error": bool(batch.is_error[j]), "pred": int(batch.pred[j]),
        "confidence": float(batch.confidence[j]),
        "probs": batch.probs[j].tolist() if batch.has_probs[j] else None,
        "embedding": batch.embedding[j].tolist() if batch.has_embedding[j] else None,
        "image": {k: float(v[j]) for k, v in batch.image.items() if not math.isnan(v[j])},
        "attrs": {k: v[j] for k, v in batch.attrs.items() if v[j] is not None},
        **{k: float(ex[k][j]) for k in _EXTRAS}, **{k: ex[k][j] for k in _STRINGS}}


def _compare(got: dict, want: dict, value: bytes | None) -> None:
    for key, w in want.items():
        g = got[key]
        if isinstance(w, list | dict) or isinstance(g, list | dict):
            ok = (type(g) is type(w) and len(g) == len(w)
                  and all(_same(x, y) for x, y in zip(g, w))
                  if isinstance(w, list) else
                  type(g) is type(w) and g.keys() == w.keys()
                  and all(_same(g[k], w[k]) for k in w))
        else:
            ok = _same(g, w)
        if not ok:
            raise Mismatch(f"field {key!r}: decoder {g!r:.120}, oracle {w!r:.120}", value)


def check_predictions(values: Sequence[bytes | None], dims: dict[str, int] | None = None,
                      counts: dict[str, int] | None = None,
                      gate: dict[tuple[str, str], int] | None = None) -> list[str | None]:
    """Decode ``values`` as one batch; the reason code of each (None: accepted, ``"parked"``:
    held for the consumer's consensus).

    ``dims``/``counts`` (model -> D / C) are what the decoder already knows; both sides learn
    from the accepted events in stream order, each in its own copy. ``gate``: decode as the
    consumer does, D per (model, version) from it (0: undecided; absent: not admitted).
    """
    o_dims, o_counts = dict(dims or {}), dict(counts or {})
    want = [oracle.prediction(v, o_dims, o_counts, gate=gate) for v in values]
    d_dims, d_counts = dict(dims or {}), dict(counts or {})
    out = decode_predictions(_records(values, "vit.predictions"), d_dims, d_counts,
                             gate=None if gate is None else _Gate(gate))
    rows = {int(off): (b, j) for b in out.batches.values()
            for j, off in enumerate(b.extras["_offset"].tolist())}
    parked = {p.offset: p for p in out.parked}
    for i, p in parked.items():
        if not want[i].parked or i in rows:
            raise Mismatch(f"parked; oracle: {sorted(want[i].reasons) or 'not parked'}", values[i])
        ev = orjson.loads(values[i])
        if (p.value, p.event_id, p.model, p.model_version) != (
                values[i], ev["event_id"], ev["model"], ev["model_version"]):
            raise Mismatch(f"parked with the wrong identity {p!r:.200}", values[i])
    accepted = {i: (lambda i=i: _row(*rows[i])) for i in rows}
    reasons = _judge(values, want, out.rejected, accepted, set(parked))
    if (d_dims, d_counts) != (o_dims, o_counts):
        raise Mismatch(f"learnt D/C {d_dims}/{d_counts}, oracle {o_dims}/{o_counts}",
                       values[0] if values else None)
    return reasons


class _Gate:
    def __init__(self, dims: dict[tuple[str, str], int]) -> None:
        self.dims = dims

    def expected(self, model: str, version: str) -> int | None:
        return self.dims.get((model, version))


def check_labels(values: Sequence[bytes | None]) -> list[str | None]:
    """Decode label ``values`` as one batch; the reason code of each (None: accepted)."""
    want = [oracle.label(v) for v in values]
    out = decode_labels(_records(values, "vit.labels"))

    def got(j: int) -> dict[str, Any]:
        return {"event_id": out.event_id[j], "label": int(out.label[j]),
                "ts_ms": int(out.ts_ms[j]), "source": out.source[j]}

    rows = {int(off): (lambda j=j: got(j)) for j, off in enumerate(out.offset.tolist())}
    return _judge(values, want, out.rejected, rows)


def _judge(values: Sequence[bytes | None], want: list[oracle.Verdict], rejections: list,
           accepted: dict[int, Any], parked: set[int] = frozenset()) -> list[str | None]:
    """Each message (by offset) rejected for a reason the oracle agrees with, parked (checked by
    the caller), or accepted with the oracle's fields (``accepted[offset]()`` reads the
    decoder's)."""
    rejected = {r.offset: r for r in rejections}
    if (len(rejected) + len(accepted) + len(parked) != len(values)
            or rejected.keys() & accepted.keys() or rejected.keys() & parked):
        raise Mismatch(f"{len(values)} messages: {len(accepted)} accepted, {len(rejected)} "
                       f"rejected, {len(parked)} parked", values[0] if values else None)
    reasons: list[str | None] = []
    for i, (value, verdict) in enumerate(zip(values, want)):
        rej = rejected.get(i)
        if i in parked:
            reasons.append("parked")
        elif verdict.parked:
            raise Mismatch("not parked; the oracle parks it (its version's D is undecided)", value)
        elif rej is not None:
            _rejection(rej.reason, rej.detail, verdict, value)
            reasons.append(rej.reason)
        elif not verdict.valid:
            raise Mismatch(f"accepted; oracle rejects it for {sorted(verdict.reasons)}", value)
        else:
            _compare(accepted[i](), verdict.fields, value)
            reasons.append(None)
    return reasons


def _rejection(reason: str, detail: str, verdict: oracle.Verdict, value: bytes | None) -> None:
    if reason not in REASONS or not detail or "\n" in detail:
        raise Mismatch(f"rejected without a reason code and one line: {reason!r} {detail!r}",
                       value)
    if reason not in verdict.reasons:
        what = "valid" if verdict.valid else f"invalid for {sorted(verdict.reasons)}"
        raise Mismatch(f"rejected as {reason} ({detail}); oracle: {what}", value)


class Harness:
    """Turns one fuzzer input into messages, checks them, and counts.

    An input's first byte picks the mode (``tests.fuzz_corpus.MODES``) in its low 2 bits, and
    in the next ones how the predictions decode (:data:`HOW`): as the first call (D and C learnt
    afresh), with the seed models' D and C already known (the batch's vectorised checks run
    instead of the learning path), or as the consumer does (a dimension gate per version).
    Raw modes decode the rest of the input as one message; mutant modes let it steer
    :func:`tests.fuzz_mutators.mutate` over 1-3 seeds decoded as one batch.
    """

    HOW = ("fresh", "known", "gate")

    def __init__(self, preds: Sequence[bytes], labels: Sequence[bytes]) -> None:
        self.preds, self.labels = list(preds), list(labels)
        self.dims: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.gate: dict[tuple[str, str], int] = {("m", "2"): 0}  # one undecided version
        for v in self.preds:
            verdict = oracle.prediction(v, self.dims, self.counts)
            f = verdict.fields
            if f is not None and f["embedding"] is not None:
                self.gate[(f["model"], f["model_version"])] = len(f["embedding"])
        self.inputs = self.messages = self.accepted = 0

    def run(self, data: bytes) -> None:
        """One atheris input."""
        if not data:
            return
        mode, rest = data[0], data[1:]
        how = self.HOW[(mode >> 2) % 3]
        if mode & 3 in (0, 2):
            self._check([rest], labels=mode & 3 == 2, how=how)
            return
        import atheris  # only the long campaign drives by a FuzzedDataProvider

        c = mutators.ProviderChooser(atheris.FuzzedDataProvider(rest))
        self.run_chooser(c, labels=mode & 3 == 3, how=how)

    def run_chooser(self, c: mutators.Chooser, labels: bool, how: str) -> list[str | None]:
        pool = self.labels if labels else self.preds
        values = [mutators.mutate(c, mutators.pick(c, pool)) for _ in range(1 + c.below(3))]
        return self._check(values, labels, how)

    def _check(self, values: list[bytes], labels: bool, how: str) -> list[str | None]:
        self.inputs += 1
        self.messages += len(values)
        if labels:
            reasons = check_labels(values)
        elif how == "known":
            reasons = check_predictions(values, self.dims, self.counts)
        elif how == "gate":
            reasons = check_predictions(values, counts=self.counts, gate=self.gate)
        else:
            reasons = check_predictions(values)
        self.accepted += reasons.count(None)
        return reasons
