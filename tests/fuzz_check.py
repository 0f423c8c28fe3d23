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
                      counts: dict[str, int] | None = None) -> list[str | None]:
    """Decode ``values`` as one batch; the reason code of each (None: accepted).

    ``dims``/``counts`` (model -> D / C) are what the decoder already knows; both sides learn
    from the accepted events in stream order, each in its own copy.
    """
    o_dims, o_counts = dict(dims or {}), dict(counts or {})
    want = [oracle.prediction(v, o_dims, o_counts) for v in values]
    d_dims, d_counts = dict(dims or {}), dict(counts or {})
    out = decode_predictions(_records(values, "vit.predictions"), d_dims, d_counts)
    rows = {int(off): (b, j) for b in out.batches.values()
            for j, off in enumerate(b.extras["_offset"].tolist())}
    reasons = _judge(values, want, out.rejected, {i: (lambda i=i: _row(*rows[i])) for i in rows})
    if (d_dims, d_counts) != (o_dims, o_counts):
        raise Mismatch(f"learnt D/C {d_dims}/{d_counts}, oracle {o_dims}/{o_counts}",
                       values[0] if values else None)
    return reasons


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
           accepted: dict[int, Any]) -> list[str | None]:
    """Each message (by offset) rejected for a reason the oracle agrees with, or accepted with
    the oracle's fields (``accepted[offset]()`` reads the decoder's)."""
    rejected = {r.offset: r for r in rejections}
    if len(rejected) + len(accepted) != len(values) or rejected.keys() & accepted.keys():
        raise Mismatch(f"{len(values)} messages: {len(accepted)} accepted, {len(rejected)} "
                       "rejected", values[0] if values else None)
    reasons: list[str | None] = []
    for i, (value, verdict) in enumerate(zip(values, want)):
        rej = rejected.get(i)
        if rej is not None:
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

    An input's first byte picks the mode (``tests.fuzz_corpus.MODES``; bit 2: the decoder already
    knows D and C of the seed models, so the batch's vectorised checks run instead of the
    learning path). Raw modes decode the rest of the input as one message; mutant modes let it
    steer :func:`tests.fuzz_mutators.mutate` over 1-3 seeds decoded as one batch.
    """

    def __init__(self, preds: Sequence[bytes], labels: Sequence[bytes]) -> None:
        self.preds, self.labels = list(preds), list(labels)
        self.dims: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        for v in self.preds:
            oracle.prediction(v, self.dims, self.counts)
        self.inputs = self.messages = self.accepted = 0

    def run(self, data: bytes) -> None:
        """One atheris input."""
        if not data:
            return
        mode, rest = data[0], data[1:]
        if mode & 3 in (0, 2):
            self._check([rest], labels=mode & 3 == 2, known=bool(mode & 4))
            return
        import atheris  # only the long campaign drives by a FuzzedDataProvider

        c = mutators.ProviderChooser(atheris.FuzzedDataProvider(rest))
        self.run_chooser(c, labels=mode & 3 == 3, known=bool(mode & 4))

    def run_chooser(self, c: mutators.Chooser, labels: bool, known: bool) -> list[str | None]:
        pool = self.labels if labels else self.preds
        values = [mutators.mutate(c, mutators.pick(c, pool)) for _ in range(1 + c.below(3))]
        return self._check(values, labels, known)

    def _check(self, values: list[bytes], labels: bool, known: bool) -> list[str | None]:
        self.inputs += 1
        self.messages += len(values)
        if labels:
            reasons = check_labels(values)
        elif known:
            reasons = check_predictions(values, self.dims, self.counts)
        else:
            reasons = check_predictions(values)
        self.accepted += reasons.count(None)
        return reasons
