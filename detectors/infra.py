"""Infra signals per (model, version, slice, window): GPU memory and utilisation quantiles,
batch size, cold-start rate and errors by code, from the optional event fields ``gpu_mem_mb``,
``gpu_util``, ``batch_size``, ``cold_start`` and ``error_code``; and an out-of-memory spike test.

State: fixed histograms (mergeable by addition) and counts. Error codes are counted by name for
the ``max_codes`` lexicographically smallest codes seen, the rest under ``other``: a code kept by
the whole merge is kept by every partial merge, so ``merge`` stays associative and memory bounded.

Findings:

* subject ``""`` (``ok``, test ``summary``): the figures, in ``details["infra"]`` (the block the
  metrics and the UI read); score = GPU memory p95 in MB;
* subject ``oom``: an exact one-sided binomial test of H0 "the share of events failing with an
  out-of-memory code (``oom_codes``) is at most ``oom_max_rate``" (default 1 %). It alerts with
  severity ``page`` when ``p <= alpha_look`` (equivalently: the one-sided Clopper-Pearson lower
  bound of the OOM rate at that level lies above ``oom_max_rate``) and at least ``min_oom``
  events failed so. ``alpha_look = alpha / n_tests / 2**(look + 1)``: Bonferroni over the
  configured slices and an alpha-spending rule over re-evaluations of the window (late events),
  so the false-page guarantee (at most ``alpha`` per window under H0) holds over **all looks**.
  A steady 0.1 % error rate never gets near it; a burst where one event in ten runs out of
  memory does within one window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy import stats

from detectors.traffic import group_bincount
from monitor.contract import (
    Batch,
    DataclassStateCodec,
    EvalContext,
    Finding,
    Reference,
    Severity,
    Status,
    finite_or_none,
)

#: Codes that mean "the model server ran out of memory" (override with ``oom_codes``).
DEFAULT_OOM_CODES = ("CUDA_OOM", "OOM", "OUT_OF_MEMORY", "CUDA_ERROR_OUT_OF_MEMORY",
                     "RESOURCE_EXHAUSTED")
_MEM_EDGES = np.exp(np.arange(np.log(16.0), np.log(2_000_000.0), np.log(1.05)))  # MB, 5 % steps
_UTIL_EDGES = np.linspace(0.01, 1.0, 100)  # fraction busy, 1 % steps
_BATCH_EDGES = 2.0 ** np.arange(1, 13)  # 1, 2-3, 4-7, ... >= 4096
OTHER = "other"


@dataclass(frozen=True, slots=True)
class InfraState:
    n: int = 0
    n_error: int = 0
    n_oom: int = 0
    cold_known: int = 0  # events that reported cold_start
    n_cold: int = 0
    batch_sum: float = 0.0
    mem_hist: np.ndarray = field(default_factory=lambda: np.zeros(len(_MEM_EDGES) + 1, np.int64))
    util_hist: np.ndarray = field(default_factory=lambda: np.zeros(len(_UTIL_EDGES) + 1, np.int64))
    batch_hist: np.ndarray = field(default_factory=lambda: np.zeros(len(_BATCH_EDGES) + 1,
                                                                    np.int64))
    codes: Mapping[str, int] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, InfraState)
                and (self.n, self.n_error, self.n_oom, self.cold_known, self.n_cold)
                == (other.n, other.n_error, other.n_oom, other.cold_known, other.n_cold)
                and np.isclose(self.batch_sum, other.batch_sum, rtol=1e-12)
                and all(np.array_equal(getattr(self, f), getattr(other, f))
                        for f in ("mem_hist", "util_hist", "batch_hist"))
                and dict(self.codes) == dict(other.codes))


def hist_quantile(hist: np.ndarray, edges: np.ndarray, q: float, geometric: bool) -> float | None:
    """Quantile from a histogram: the middle of the bin holding rank ``q`` (None when empty).

    >>> h = np.zeros(len(_UTIL_EDGES) + 1, np.int64); h[50] = 10
    >>> round(hist_quantile(h, _UTIL_EDGES, 0.5, geometric=False), 3)
    0.505
    """
    total = int(hist.sum())
    if total == 0:
        return None
    i = int(np.searchsorted(np.cumsum(hist), q * total, side="left"))
    lo, hi = edges[max(i - 1, 0)], edges[min(i, len(edges) - 1)]
    if i == 0:
        lo = hi if geometric else 0.0
    return float(np.sqrt(lo * hi) if geometric else (lo + hi) / 2)


def _cap(codes: Mapping[str, int], max_codes: int) -> dict[str, int]:
    names = sorted(c for c in codes if c != OTHER)
    kept = {c: int(codes[c]) for c in names[:max_codes]}
    rest = sum(int(codes[c]) for c in names[max_codes:]) + int(codes.get(OTHER, 0))
    return {**kept, OTHER: rest} if rest else kept


def _bin_or_none(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The histogram bin of each value; ``len(edges) + 1`` (a last, dropped bin) where not
    finite."""
    out = np.full(len(values), len(edges) + 1, np.int64)
    finite = np.isfinite(values)
    out[finite] = np.searchsorted(edges, values[finite], side="right")
    return out


class InfraSignals(DataclassStateCodec):
    """GPU memory/utilisation, batch size, cold starts and errors by code; OOM spikes page.

    Example
    -------
    >>> import numpy as np
    >>> from dataclasses import replace
    >>> from monitor.testing import make_context, synthetic_batch
    >>> det = InfraSignals()
    >>> b = synthetic_batch(n=1000, seed=0, error_rate=0.001)
    >>> main, oom = det.evaluate(det.observe(det.empty(), b), make_context())
    >>> main.status.value, oom.status.value, main.details["infra"]["cold_start_rate"] > 0
    ('ok', 'ok', True)
    >>> codes = np.where(np.arange(1000) % 10 == 0, "CUDA_OOM", None).astype(object)
    >>> burst = replace(b, is_error=codes != None, extras={**b.extras, "error_code": codes})
    >>> oom = det.evaluate(det.observe(det.empty(), burst), make_context())[1]
    >>> oom.status.value, oom.severity.value, oom.n, round(oom.score, 2)
    ('alert', 'page', 1000, 0.1)
    """

    name: ClassVar[str] = "infra"
    version: ClassVar[int] = 1
    state_type: ClassVar[type] = InfraState
    wide_columns: ClassVar[frozenset[str]] = frozenset({"attrs"})  # extras ride with attrs

    def __init__(self, oom_codes: tuple[str, ...] | list[str] = DEFAULT_OOM_CODES,
                 oom_max_rate: float = 0.01, min_oom: int = 5, max_codes: int = 32,
                 min_samples: int | None = None) -> None:
        if not 0 < oom_max_rate < 1:
            raise ValueError("oom_max_rate must be in (0, 1)")
        self.oom_codes = frozenset(str(c) for c in oom_codes)
        self.oom_max_rate = float(oom_max_rate)
        self.min_oom = int(min_oom)
        self.max_codes = int(max_codes)
        self.min_samples = min_samples

    def empty(self) -> InfraState:
        return InfraState()

    def observe(self, state: InfraState, batch: Batch) -> InfraState:
        return self.observe_groups([state], batch, [np.arange(len(batch))], None)[0]

    def observe_groups(self, states: Sequence[InfraState], batch: Batch,
                       groups: Sequence[np.ndarray],
                       reference: Reference | None = None) -> list[InfraState]:
        """Every group at once: histograms are one ``bincount`` over (group, bin), error codes
        are named once per batch."""
        n = len(batch)
        nan = np.full(n, np.nan)
        ex = batch.extras
        mem = np.asarray(ex.get("gpu_mem_mb", nan), dtype=np.float64)
        util = np.asarray(ex.get("gpu_util", nan), dtype=np.float64)
        util = np.where(util > 1.0, util / 100.0, util)  # percent -> fraction
        size = np.asarray(ex.get("batch_size", nan), dtype=np.float64)
        cold = np.asarray(ex.get("cold_start", nan), dtype=np.float64)
        known = np.isfinite(cold)
        hists = [group_bincount(_bin_or_none(values, edges), groups, len(edges) + 2)
                 for values, edges in ((mem, _MEM_EDGES), (util, _UTIL_EDGES),
                                       (size, _BATCH_EDGES))]
        codes = ex.get("error_code")
        code_of = None  # each error event's code name (None: not an error)
        if codes is not None and batch.is_error.any():
            code_of = np.full(n, None, dtype=object)
            errs = np.asarray(codes, dtype=object)[batch.is_error]
            code_of[batch.is_error] = np.array(
                [str(c)[:64] if c is not None else "unknown" for c in errs], dtype=object)
        out = []
        for i, (state, rows) in enumerate(zip(states, groups, strict=True)):
            is_error = batch.is_error[rows]
            delta: dict[str, int] = {}
            n_oom = 0
            if code_of is not None:
                names, counts = np.unique(code_of[rows][is_error].astype(str), return_counts=True)
                delta = dict(zip(names.tolist(), counts.tolist(), strict=True))
                n_oom = sum(v for k, v in delta.items() if k in self.oom_codes)
            elif codes is None and is_error.any():
                delta = {"unknown": int(is_error.sum())}
            merged = dict(state.codes)
            for k, v in delta.items():
                merged[k] = merged.get(k, 0) + int(v)
            c = cold[rows]
            k = known[rows]
            out.append(InfraState(
                state.n + len(rows), state.n_error + int(is_error.sum()), state.n_oom + n_oom,
                state.cold_known + int(k.sum()), state.n_cold + int((c[k] > 0).sum()),
                state.batch_sum + float(np.nansum(size[rows])),
                state.mem_hist + hists[0][i, :-1], state.util_hist + hists[1][i, :-1],
                state.batch_hist + hists[2][i, :-1], _cap(merged, self.max_codes)))
        return out

    def merge(self, a: InfraState, b: InfraState) -> InfraState:
        codes = dict(a.codes)
        for k, v in b.codes.items():
            codes[k] = codes.get(k, 0) + int(v)
        return InfraState(a.n + b.n, a.n_error + b.n_error, a.n_oom + b.n_oom,
                          a.cold_known + b.cold_known, a.n_cold + b.n_cold,
                          a.batch_sum + b.batch_sum, a.mem_hist + b.mem_hist,
                          a.util_hist + b.util_hist, a.batch_hist + b.batch_hist,
                          _cap(codes, self.max_codes))

    def summary(self, s: InfraState) -> dict[str, Any]:
        """The figures of a state (JSON-ready): what metrics and the UI read."""
        def q(hist: np.ndarray, edges: np.ndarray, geometric: bool) -> dict[str, float | None]:
            return {f"p{int(p * 100)}": hist_quantile(hist, edges, p, geometric)
                    for p in (0.5, 0.95, 0.99)}

        n_batch = int(s.batch_hist.sum())
        return {
            "count": s.n, "errors": s.n_error, "error_rate": s.n_error / s.n if s.n else None,
            "errors_by_code": dict(sorted(s.codes.items(), key=lambda kv: (-kv[1], kv[0]))),
            "oom": s.n_oom, "oom_rate": s.n_oom / s.n if s.n else None,
            "cold_starts": s.n_cold, "cold_start_known": s.cold_known,
            "cold_start_rate": s.n_cold / s.cold_known if s.cold_known else None,
            "gpu_events": int(s.mem_hist.sum()),
            "gpu_mem_mb": q(s.mem_hist, _MEM_EDGES, True),
            "gpu_util": q(s.util_hist, _UTIL_EDGES, False),
            "batch_size": {"mean": s.batch_sum / n_batch if n_batch else None,
                           **q(s.batch_hist, _BATCH_EDGES, True)},
        }

    def evaluate(self, state: InfraState, context: EvalContext) -> tuple[Finding, ...]:
        need = self.min_samples or context.min_samples
        if state.n < need:
            return (Finding.insufficient(self, state.n, need),
                    Finding.insufficient(self, state.n, need, subject="oom"))
        figures = self.summary(state)
        main = Finding(self.name, self.version, Status.OK,
                       score=finite_or_none(figures["gpu_mem_mb"]["p95"]), n=state.n,
                       test="summary", details={"infra": figures})
        return main, self._oom(state, context)

    def _oom(self, s: InfraState, ctx: EvalContext) -> Finding:
        alpha_look = ctx.alpha / max(1, ctx.n_tests) / 2 ** (ctx.look + 1)
        p = float(stats.binom.sf(s.n_oom - 1, s.n, self.oom_max_rate)) if s.n_oom else 1.0
        lower = (float(stats.beta.ppf(alpha_look, s.n_oom, s.n - s.n_oom + 1))
                 if s.n_oom else 0.0)
        alert = p <= alpha_look and s.n_oom >= self.min_oom
        return Finding(self.name, self.version, Status.ALERT if alert else Status.OK,
                       score=s.n_oom / s.n, threshold=self.oom_max_rate, p_value=p,
                       severity=Severity.PAGE if alert else Severity.NONE, n=s.n,
                       subject="oom", test="binomial-exact",
                       details={"oom": s.n_oom, "codes": sorted(self.oom_codes),
                                "alpha_look": alpha_look, "lower_bound": lower,
                                "min_oom": self.min_oom})
