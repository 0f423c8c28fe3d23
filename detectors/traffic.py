"""Traffic and latency statistics per (model, version, slice, window): counts, error rate and
latency quantiles from a fixed log-spaced histogram (mergeable by addition).

Descriptive, not a test: the finding is ``ok`` with the figures in ``details`` (or
``insufficient_data`` under ``min_samples``). SLO burn rates and regressions are judged by other
detectors from the same figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from monitor.contract import DataclassStateCodec, Finding, Status, group_offsets

if TYPE_CHECKING:  # annotations only (postponed by __future__ annotations)
    from monitor.contract import Batch, EvalContext, Reference

# 0.01 ms .. 100 s in 5% steps: quantile error under 5%, 331 bins, ~1 KB compressed state.
_EDGES = np.exp(np.arange(np.log(0.01), np.log(100_000.0), np.log(1.05)))


@dataclass(frozen=True, slots=True)
class TrafficState:
    n: int
    n_error: int
    latency_sum: float
    latency_hist: np.ndarray  # int64 counts; bin 0 is below the first edge, last above the last

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TrafficState) and self.n == other.n
                and self.n_error == other.n_error
                and np.isclose(self.latency_sum, other.latency_sum, rtol=1e-12)
                and np.array_equal(self.latency_hist, other.latency_hist))


def group_bincount(values: np.ndarray, groups: Sequence[np.ndarray], size: int) -> np.ndarray:
    """Per group, the ``bincount`` of its rows' ``values`` (ints in ``[0, size)``): int64
    [len(groups), size], one ``bincount`` over (group, value) for all groups.

    >>> group_bincount(np.array([0, 2, 2, 1]), [np.array([0, 1, 2]), np.array([3])], 3).tolist()
    [[1, 0, 2], [0, 1, 0]]
    """
    rows, starts = group_offsets(groups)
    which = np.repeat(np.arange(len(groups)), np.diff(np.r_[starts, len(rows)]))
    flat = np.asarray(values, np.int64)[rows] + which * size
    return np.bincount(flat, minlength=len(groups) * size).reshape(len(groups), size)


def latency_quantile(hist: np.ndarray, q: float) -> float:
    """Quantile from the histogram: the geometric middle of the bin holding rank ``q``.

    >>> h = np.zeros(len(_EDGES) + 1, dtype=np.int64)
    >>> np.add.at(h, np.searchsorted(_EDGES, [10.0] * 99 + [900.0], side="right"), 1)
    >>> round(latency_quantile(h, 0.5), 1), round(latency_quantile(h, 0.995))
    (10.0, 887)
    """
    total = int(hist.sum())
    if total == 0:
        return float("nan")
    i = int(np.searchsorted(np.cumsum(hist), q * total, side="left"))
    lo = _EDGES[max(i - 1, 0)]
    hi = _EDGES[min(i, len(_EDGES) - 1)]
    return float(np.sqrt(lo * hi))


class TrafficStats(DataclassStateCodec):
    """Counts, error rate and P50/P95/P99 latency of one window.

    Example
    -------
    >>> from monitor.testing import make_context, synthetic_batch
    >>> det = TrafficStats()
    >>> s = det.observe(det.empty(), synthetic_batch(n=200, seed=0, error_rate=0.1))
    >>> f = det.evaluate(s, make_context())[0]
    >>> f.status.value, f.n, round(f.details["error_rate"], 2)
    ('ok', 200, 0.13)
    """

    name: ClassVar[str] = "traffic"
    version: ClassVar[int] = 1
    state_type: ClassVar[type] = TrafficState
    wide_columns: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, min_samples: int | None = None) -> None:
        self.min_samples = min_samples

    def empty(self) -> TrafficState:
        return TrafficState(0, 0, 0.0, np.zeros(len(_EDGES) + 1, dtype=np.int64))

    def observe(self, state: TrafficState, batch: Batch) -> TrafficState:
        return self.observe_groups([state], batch, [np.arange(len(batch))], None)[0]

    def observe_groups(self, states: Sequence[TrafficState], batch: Batch,
                       groups: Sequence[np.ndarray],
                       reference: Reference | None = None) -> list[TrafficState]:
        """Every group at once: one latency-histogram ``bincount`` over (group, bin)."""
        lat = batch.latency_ms
        hist = group_bincount(np.searchsorted(_EDGES, lat, side="right"), groups,
                              len(_EDGES) + 1)
        errors = group_bincount(batch.is_error.astype(np.int64), groups, 2)[:, 1]
        return [TrafficState(s.n + len(g), s.n_error + int(e), s.latency_sum + float(lat[g].sum()),
                             s.latency_hist + h)
                for s, g, e, h in zip(states, groups, errors.tolist(), hist, strict=True)]

    def merge(self, a: TrafficState, b: TrafficState) -> TrafficState:
        return TrafficState(a.n + b.n, a.n_error + b.n_error, a.latency_sum + b.latency_sum,
                            a.latency_hist + b.latency_hist)

    def evaluate(self, state: TrafficState, context: EvalContext) -> tuple[Finding, ...]:
        need = self.min_samples or context.min_samples
        if state.n < need:
            return (Finding.insufficient(self, state.n, need),)
        q = {f"p{int(p * 100)}_ms": latency_quantile(state.latency_hist, p) for p in (0.5, 0.95, 0.99)}
        details = {"count": state.n, "errors": state.n_error,
                   "error_rate": state.n_error / state.n,
                   "mean_latency_ms": state.latency_sum / state.n, **q}
        return (Finding(self.name, self.version, Status.OK, score=q["p99_ms"], n=state.n,
                        test="summary", details=details),)
