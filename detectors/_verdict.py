"""The decision rule shared by the detectors: p-values in, calibrated findings out.

Every drift detector tests a family of hypotheses for one state key (its features, its classes,
its one MMD test) and reports one main finding whose

* ``p_value`` is the smallest family-adjusted p-value, multiplied by ``EvalContext.n_tests``
  (Bonferroni across the window's slices, which share ``alpha``) and by
  ``alpha / look_alpha(alpha, look)`` (the share of ``alpha`` this look may spend, below), capped
  at 1, so it is compared with the configured ``alpha`` directly;
* ``score`` is ``-log10(p_value)`` and ``threshold`` is ``-log10(alpha)``: one unit-free,
  higher-is-worse scale for every detector, and ``score >= threshold`` exactly when it alerts.

**Repeated looks.** A window is evaluated when it closes and again whenever late events or labels
change it (``EvalContext.look`` counts the earlier evaluations). Each look spends part of
``alpha`` (:func:`look_alpha`): ``0.9 alpha`` at the first look, ``0.1 alpha / 2**k`` at look
``k >= 1``. The shares sum to less than ``alpha`` over any number of looks, so by the union bound
the probability that *any* look of a stationary window alarms is at most ``alpha`` -- an
alpha-spending rule in the sense of Lan & DeMets (1983), with a fixed geometric schedule because
the number of looks is not known in advance. Nearly all of the budget goes to the first look
(the window as closed); late looks need overwhelming evidence.

So under stationary traffic each (detector, window) alarms with probability at most ``alpha`` in
total over all its slices, features and looks. Effect sizes (PSI, MMD^2, ...) are reported beside
it; a test that is significant but below the detector's ``min_effect`` gives ``warn``, not
``alert``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import special

from detectors.stats.correction import adjust, critical_p
from detectors.stats.univariate import ks_critical
from monitor.contract import ALL_SLICE, EvalContext, Finding, Severity, StateKey, Status

P_FLOOR = 1e-300  # p-values underflow to 0 for gross drift; keep -log10 finite
_TOL = 1 + 1e-9  # p == alpha exactly (e.g. 1/100 vs 0.01) must reject


FIRST_LOOK_SHARE = 0.9  # of alpha, spent by the first evaluation of a window


def look_alpha(alpha: float, look: int) -> float:
    """The part of ``alpha`` look ``look`` (0 = first) of one window may spend.

    ``0.9 alpha`` at look 0, ``0.1 alpha / 2**look`` after: the sum over looks 0..K is
    ``alpha (1 - 0.1 / 2**K) < alpha`` for every K.

    >>> [round(look_alpha(0.01, k), 6) for k in range(4)]
    [0.009, 0.0005, 0.00025, 0.000125]
    >>> sum(look_alpha(0.01, k) for k in range(200)) <= 0.01
    True
    """
    if look <= 0:
        return FIRST_LOOK_SHARE * alpha
    return math.ldexp((1.0 - FIRST_LOOK_SHARE) * alpha, -min(int(look), 1000))


def spending_factor(ctx: EvalContext) -> float:
    """``alpha / look_alpha``: multiplies a p-value so that it is compared with ``alpha``."""
    return ctx.alpha / look_alpha(ctx.alpha, ctx.look) if ctx.alpha > 0 else 1.0


def alpha_per_key(ctx: EvalContext) -> float:
    """The level one state key is tested at on this look: ``look_alpha / n_tests``."""
    return look_alpha(ctx.alpha, ctx.look) / max(1, ctx.n_tests)


def evidence(p: float) -> float:
    """``-log10 p``, floored so it stays finite."""
    return -math.log10(max(float(p), P_FLOOR))


def key_seed(seed: int, key: StateKey) -> int:
    """A deterministic per-(key, seed) random seed: same inputs, same permutations, in any process,
    while different windows do not reuse one set of permutations."""
    text = f"{seed}|{key.model}|{key.model_version}|{key.slice}|{key.window_start_ms}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def family(p_raw: np.ndarray, ctx: EvalContext, method: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Adjust a family of raw p-values for its size, ``ctx.n_tests`` and the look's spending.

    Returns ``(p_adjusted, rejected, critical_raw_p)``: a test is rejected exactly when its raw
    p-value is at most ``critical_raw_p``.
    """
    p_raw = np.asarray(p_raw, np.float64)
    p_adj = np.minimum(1.0, adjust(p_raw, method) * max(1, ctx.n_tests) * spending_factor(ctx))
    rejected = p_adj <= ctx.alpha * _TOL
    return p_adj, rejected, critical_p(p_raw, alpha_per_key(ctx), method)


def main_finding(det: Any, ctx: EvalContext, *, p_adj: np.ndarray, rejected: np.ndarray,
                 effect_ok: np.ndarray, n: int, test: str, details: Mapping[str, Any]) -> Finding:
    """The detector-level finding from a family's adjusted p-values (see module docstring)."""
    p_main = float(p_adj.min()) if p_adj.size else 1.0  # methods: no numpy dispatch
    if (rejected & effect_ok).any():
        status = Status.ALERT
    elif rejected.any():
        status = Status.WARN
    else:
        status = Status.OK
    return Finding(
        det.name, det.version, status,
        score=evidence(p_main), threshold=evidence(ctx.alpha), p_value=p_main,
        severity=Severity.TICKET if status is Status.ALERT else Severity.NONE,
        n=n, test=test,
        details=jsonable({"alpha": ctx.alpha, "n_tests": ctx.n_tests, "look": ctx.look,
                          "alpha_look": look_alpha(ctx.alpha, ctx.look),
                          "alpha_per_slice": alpha_per_key(ctx), **details}),
    )


def thresholds(rows: list[Mapping[str, Any]], crit: float) -> list[float]:
    """Critical value of each row's statistic at the raw level ``crit``: the KS D or chi-square
    at which its p-value equals ``crit``, so ``score > threshold`` reads like the decision.
    Computed once per distinct (test, sizes, dof): scipy's exact KS inverse costs milliseconds
    and the BBSD rows of one window all share their sizes."""
    memo: dict[tuple, float] = {}
    out = []
    for r in rows:
        key = (r["test"], r.get("n_ref"), r["n"], r.get("dof"))
        if key not in memo:
            memo[key] = (ks_critical(crit, r["n_ref"], r["n"]) if r["test"] == "ks"
                         else float(special.chdtri(max(r.get("dof") or 1, 1), crit)))  # chi2.isf
        out.append(memo[key])
    return out


def sub_status(rejected: bool, effect_ok: bool) -> Status:
    if rejected:
        return Status.ALERT if effect_ok else Status.WARN
    return Status.OK


def no_reference(det: Any, n: int, reason: str, subject: str = "") -> Finding:
    return Finding(det.name, det.version, Status.NO_REFERENCE, n=n, subject=subject,
                   details={"reason": reason})


_PLAIN = frozenset({str, int, bool, type(None)})  # returned by jsonable as they are
_isfinite = math.isfinite


def jsonable(value: Any) -> Any:
    """Finding details for JSON/PostgreSQL: numpy to Python, NaN/Inf to None, tuples to lists."""
    t = type(value)
    if t in _PLAIN:  # the common leaves first: no isinstance chain for them
        return value
    if t is dict:
        return _dict(value)
    if t is float or t is np.float64:
        return float(value) if _isfinite(value) else None
    if t is np.int64:
        return int(value)
    if isinstance(value, Mapping):
        return _dict(value)
    if isinstance(value, np.ndarray):
        # Numbers only: tolist() already gives Python ints/floats/bools; only non-finite
        # floats need the element walk (to None). Histograms and scatter points are most of a
        # finding's details, so this is most of the cost of building one.
        if value.dtype.kind in "biu":
            return value.tolist()
        if value.dtype.kind == "f":
            if value.ndim == 1:
                out = value.tolist()
                # a sum of finite floats is finite unless it overflows (then the walk below)
                if _isfinite(sum(out)):
                    return out
                return jsonable(out)
            if bool(np.isfinite(value).all()):
                return value.tolist()
        return jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        kinds = set(map(type, value))
        if kinds <= _PLAIN or (kinds <= _PLAIN | {float} and all(
                _isfinite(v) for v in value if type(v) is float)):
            return list(value)  # event ids, finite floats: every element as it is
        return [jsonable(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if _isfinite(value) else None
    return value


def _dict(value: Mapping) -> dict[str, Any]:
    """:func:`jsonable` of a mapping: its plain values and finite floats copied in this loop
    (most of a finding's values), only the others through :func:`jsonable`."""
    out = {}
    for k, v in value.items():
        if type(k) is not str:
            k = str(k)
        t = type(v)
        if t in _PLAIN:
            out[k] = v
        elif t is float:
            out[k] = v if _isfinite(v) else None
        else:
            out[k] = jsonable(v)
    return out


NO_SLICE_REFERENCE = "no reference for this slice"


def slice_profile(context: EvalContext) -> Mapping[str, Any]:
    """The reference profile a slice's window is compared with: the whole version's for slice
    ``all``, else the slice's own sub-profile (``slices.<slice>``, stored by ``vitmon reference
    capture`` for slices with enough reference events) -- and an empty mapping when the slice
    has none, which the detectors report as ``no_reference`` (:data:`NO_SLICE_REFERENCE`).

    Never the whole version's profile for another slice: a camera's frames differ from the
    all-camera mix by construction (its look, size, region), so a new or small camera compared
    with the whole traffic alarmed in most windows (docs/drift.md measured 203 of 309 such
    slice windows)."""
    profile = context.reference.profile if context.reference is not None else {}
    if context.key.slice == ALL_SLICE:
        return profile
    return profile.get("slices", {}).get(context.key.slice) or {}
