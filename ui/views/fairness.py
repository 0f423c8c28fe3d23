"""Fairness: the audit view for product owners. Over the chosen range: per protected group,
accuracy, selection rate, TPR and FPR with sample sizes and intervals; difference and ratio
against the reference group with confidence intervals and significance; the disparity summaries;
CSV and self-contained HTML exports (the same files as ``vitmon fairness report``); and the
largest disparity window by window."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pandas as pd
import streamlit as st

from detectors.fairness_audit import Audit, Comparison
from ui import charts, store
from ui.links import format_time
from ui.nav import Context
from ui.queries import audit as qa
from ui.queries import findings as qf
from ui.views import common
from ui.views.common import hhmm, num, pct

DETECTOR = "fairness"


def comparison_rows(comparisons: Iterable[Comparison]) -> list[dict[str, Any]]:
    """One table row per (group, metric) comparison against the reference group.

    >>> c = Comparison("group", "group=B", "group=A", "accuracy", 0.7, 300, 0.9, 700, -0.2,
    ...                (-0.25, -0.15), 0.78, (0.72, 0.84), 1e-10, 1e-9, True, (-0.26, -0.14), True)
    >>> r = comparison_rows([c])[0]
    >>> r["difference"], r["difference 95 % CI"], r["verdict"]
    ('-20.0 pts', '-25.0 – -15.0 pts', 'VIOLATION')
    """
    out = []
    for c in comparisons:
        verdict = ("VIOLATION" if c.violation else "significant" if c.significant
                   else "within bounds")
        out.append({
            "group": c.group, "reference": c.reference, "metric": c.metric,
            "value": pct(c.value), "n": c.n, "reference value": pct(c.ref_value),
            "reference n": c.ref_n, "difference": _pts(c.difference),
            "difference 95 % CI": f"{_pts(c.difference_ci[0], unit=False)} – "
                                  f"{_pts(c.difference_ci[1])}",
            "ratio": num(c.ratio, ".3f"),
            "ratio 95 % CI": f"{num(c.ratio_ci[0], '.3f')} – {num(c.ratio_ci[1], '.3f')}",
            "p corrected": c.p_adjusted, "verdict": verdict})
    return out


def _pts(x: float, unit: bool = True) -> str:
    return f"{x * 100:+.1f}{' pts' if unit else ''}".replace("+-", "-")


def render(ctx: Context) -> None:
    common.header("Fairness audit", ctx)
    params = json.dumps(ctx.settings.detector_params().get(DETECTOR, {}), sort_keys=True,
                        default=list)
    found = store.get(qa.fairness_audit, params, ctx.settings.detectors.alpha, ctx.model,
                      ctx.version, ctx.slice, ctx.start_ms, ctx.end_ms)
    if found is None:
        common.empty("No fairness data in this range",
                     "Configure the protected attributes (`fairness.attributes`, e.g. `[group]`), "
                     "keep the `fairness` detector enabled, and wait for evaluated windows.")
        return
    a = found.audit
    st.caption(f"{found.windows} evaluated windows merged (exact: the states are counts). "
               f"Reference group: configured, else the largest. Intervals: Newcombe (difference) "
               f"and Katz (ratio) at {a.config.confidence:.0%}; significance Bonferroni-adjusted "
               f"over {a.family_size} comparisons at α = {a.config.alpha:g}; thresholds: ratio "
               f"≥ {a.config.min_ratio:g} (four-fifths rule), |difference| ≤ "
               f"{a.config.max_difference:g}.")
    _verdict(a)
    _exports(ctx, found)
    st.subheader("Groups against their reference group")
    if a.comparisons:
        common.table(pd.DataFrame(comparison_rows(a.comparisons)), common.FAIRNESS_P_NOTE,
                     **{"p corrected": st.column_config.NumberColumn(
                         format="%.2e", help=common.FAIRNESS_P_NOTE.replace("**", ""))})
    else:
        common.empty("No comparisons", f"No group reached {a.config.min_group_size} predictions.")
    st.subheader("Disparity summaries")
    common.table(pd.DataFrame([{"dimension": s.dimension, "reference": s.reference,
                                "reference chosen": s.reference_source,
                                "groups": ", ".join(s.groups),
                                **{k: num(v, ".3f") for k, v in s.gaps.items()}}
                               for s in a.summaries]))
    st.subheader("Per-group rates")
    common.table(pd.DataFrame([{"group": g.group, "predictions": g.n_predictions,
                                "labelled": g.n_labelled, "metric": m, "rate": pct(r.value),
                                "x": r.x, "n": r.n}
                               for g in a.groups for m, r in g.rates.items()]))
    st.subheader("Largest disparity, window by window")
    _over_time(ctx)


def _verdict(a: Audit) -> None:
    flagged = [c for c in a.comparisons if c.violation]
    if flagged:
        st.error("**Disparity beyond the thresholds**: " + "; ".join(
            f"`{c.group}` {c.metric} {_pts(c.difference)} vs `{c.reference}`" for c in flagged))
    else:
        st.success(f"No group's disparity is significantly beyond the thresholds "
                   f"({len(a.comparisons)} comparisons).")


def _exports(ctx: Context, found: qa.FairnessAudit) -> None:
    stem = (f"fairness-{ctx.model}-{ctx.version}-{format_time(ctx.start_ms)}"
            f"-{format_time(ctx.end_ms)}").replace(":", "")
    left, right, _ = st.columns([1, 1, 4])
    left.download_button("Download HTML report", found.html.encode(), f"{stem}.html",
                         "text/html")
    right.download_button("Download CSV", found.csv.encode(), f"{stem}.csv", "text/csv")


def _over_time(ctx: Context) -> None:
    points = store.get(qf.finding_series, DETECTOR, ctx.model, ctx.version, ctx.slice,
                       ctx.start_ms, ctx.end_ms)
    if not points:
        common.empty("No evaluated windows", "Windows appear as event time passes their end.")
        return
    df = pd.DataFrame([{"time": q.window_start_ms, "score": q.score, "threshold": q.threshold,
                        "status": q.status, "p_corrected": q.p_value, "n": q.n} for q in points])
    df["time"] = charts.to_time(df["time"])
    st.altair_chart(charts.score_vs_threshold(df), width="stretch")
    alerting = [q for q in points if q.status == "alert"]
    st.caption("Score: the largest absolute difference of any group from its reference group in "
               "that window; dashed: the configured maximum difference."
               + (f" {len(alerting)} windows in alert, the newest at "
                  f"{hhmm(alerting[-1].window_start_ms)}." if alerting else ""))
