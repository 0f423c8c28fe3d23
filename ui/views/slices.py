"""Slices: per-slice accuracy with Wilson intervals and label coverage, a heat map over two
attributes, and the slices doing significantly worse than the model overall."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ui import charts, store
from ui.nav import Context
from ui.queries import findings as qf
from ui.queries import labels as ql
from ui.views import common, thumbs
from ui.views.common import hhmm, pct

PREFERRED_HEATMAP = ("region", "device")


def worst(groups: tuple[ql.GroupCounts, ...], min_labelled: int) -> list[ql.GroupCounts]:
    """Slices whose whole 95 % interval lies below the overall accuracy, worst gap first.

    >>> c = lambda k, ok, n: ql.GroupCounts(k, None, ql.Counts(n, 0, n, ok, None))
    >>> [g.key for g in worst((c("all", 900, 1000), c("cam=1", 60, 100), c("cam=2", 95, 100)), 30)]
    ['cam=1']
    """
    overall = next((g.counts.accuracy for g in groups if g.key == "all"), None)
    if overall is None:
        return []
    bad = [g for g in groups if g.key != "all" and g.counts.labelled >= min_labelled
           and g.counts.interval[1] < overall]
    return sorted(bad, key=lambda g: g.counts.accuracy or 0.0)


def render(ctx: Context) -> None:
    common.header("Slices", ctx)
    groups = store.get(ql.slice_counts, ctx.model, ctx.version, ctx.start_ms, ctx.end_ms)
    if not groups:
        common.empty("No predictions in this range", "Widen the time range.")
        return
    min_n = ctx.settings.slices.min_samples
    overall = next((g.counts for g in groups if g.key == "all"), None)
    st.subheader("Accuracy per slice")
    if overall is None or not overall.labelled:
        common.empty("No labels yet", "Accuracy needs ground truth on `vit.labels`; coverage "
                     "below shows how many predictions are labelled so far.")
    _table(ctx, groups, overall, min_n)
    st.subheader("Heat map over two attributes")
    _heatmap(ctx, min_n)
    st.subheader("Worst slices")
    _worst(ctx, groups, min_n)
    size_ms = ctx.settings.windows.size_s * 1000
    newest = (ctx.end_ms - 1) // size_ms * size_ms
    st.subheader(f"Example inputs · {ctx.slice} · newest window")
    thumbs.compare(ctx, newest, newest + size_ms)


def _table(ctx: Context, groups: tuple[ql.GroupCounts, ...], overall: ql.Counts | None,
           min_n: int) -> None:
    base = overall.accuracy if overall else None
    rows = []
    for g in groups:
        c = g.counts
        lo, hi = c.interval
        enough = c.labelled >= min_n
        rows.append({
            "slice": g.key, "predictions": c.n, "labelled": c.labelled,
            "coverage": pct(c.coverage), "accuracy": pct(c.accuracy) if enough
            else f"insufficient data (<{min_n} labels)",
            "95 % CI": f"{pct(lo)} – {pct(hi)}" if enough else "",
            "vs all": (f"{(c.accuracy - base) * 100:+.1f} pts" if enough and base is not None
                       and c.accuracy is not None else ""),
            "error rate": pct(c.error_rate, 2), "mean confidence": pct(c.mean_confidence),
            "open": ctx.link(page="drift", slice=g.key)})
    common.table(pd.DataFrame(rows))
    chart = pd.DataFrame([{"slice": g.key, "value": g.counts.accuracy, "lo": g.counts.interval[0],
                           "hi": g.counts.interval[1], "n": g.counts.labelled}
                          for g in groups if g.counts.labelled >= min_n])
    if not chart.empty:
        st.altair_chart(charts.intervals(chart, base), width="stretch")
        st.caption("Dots: realised accuracy; bars: 95 % Wilson interval; dashed: all traffic. "
                   f"Slices with fewer than {min_n} labelled predictions are not plotted.")


def _heatmap(ctx: Context, min_n: int) -> None:
    attrs = list(store.get(ql.slice_attributes))
    if len(attrs) < 2:
        common.empty("Fewer than two slice attributes",
                     "Configure `slices.attributes` with at least two attributes.")
        return
    first = PREFERRED_HEATMAP[0] if PREFERRED_HEATMAP[0] in attrs else attrs[0]
    second = PREFERRED_HEATMAP[1] if PREFERRED_HEATMAP[1] in attrs else attrs[1]
    left, right = st.columns(2)
    x = left.selectbox("Columns", attrs, index=attrs.index(first))
    y = right.selectbox("Rows", attrs, index=attrs.index(second))
    if x == y:
        st.caption("Pick two different attributes.")
        return
    cells = store.get(ql.heatmap, ctx.model, ctx.version, ctx.start_ms, ctx.end_ms, x, y)
    df = pd.DataFrame([{"col": c.key, "row": c.second, "value": c.counts.accuracy,
                        "n": c.counts.labelled,
                        "label": (pct(c.counts.accuracy, 0) if c.counts.labelled >= min_n
                                  else f"n={c.counts.labelled}")}
                       for c in cells])
    if df.empty or df["value"].isna().all():
        common.empty("No labelled predictions for these attributes", "Widen the time range.")
        return
    st.altair_chart(charts.heatmap(df, x, y), width="stretch")


def _worst(ctx: Context, groups: tuple[ql.GroupCounts, ...], min_n: int) -> None:
    found = store.get(qf.discoveries, ctx.model, ctx.version, ctx.start_ms, ctx.end_ms)
    if found:
        st.caption(f"Worst-slice discovery (`vitmon slices discover`) over "
                   f"{hhmm(found[0].from_ms)} → {hhmm(found[0].to_ms)}: attribute combinations "
                   "whose error rate is significantly above the rest, by effect size.")
        common.table(pd.DataFrame([{
            "rank": d.rank, "slice": d.slice, "labelled": d.n, "error rate": pct(d.error_rate),
            "95 % CI": f"{pct(d.error_rate_ci[0])} – {pct(d.error_rate_ci[1])}",
            "overall": pct(d.overall_error_rate), "p corrected": d.p_adjusted} for d in found]),
            common.DISCOVERY_P_NOTE, **{"p corrected": st.column_config.NumberColumn(
                format="%.2e", help=common.DISCOVERY_P_NOTE.replace("**", ""))})
    else:
        st.caption("No worst-slice discovery in this range: run `vitmon slices discover --model "
                   f"{ctx.model} --version {ctx.version} --from T --to T` to search attribute "
                   "combinations (up to three attributes).")
    flagged = [p for p in store.get(qf.incidents, ctx.start_ms, ctx.end_ms, ctx.model)
               if p.detector == "performance" and p.version == ctx.version]
    if flagged:
        st.caption("Windows where the `performance` detector found a significant regression "
                   "against the reference:")
        common.table(common.findings_frame(flagged[:30], ctx))
    bad = worst(groups, min_n)
    if not bad:
        common.empty("No monitored slice significantly worse than the model overall",
                     "Every slice with enough labels has a 95 % interval that reaches the "
                     "overall accuracy.")
        return
    st.caption("Monitored slices whose whole 95 % accuracy interval lies below the overall "
               "accuracy in this range:")
    common.table(pd.DataFrame([{
        "slice": g.key, "accuracy": pct(g.counts.accuracy),
        "95 % CI": f"{pct(g.counts.interval[0])} – {pct(g.counts.interval[1])}",
        "labelled": g.counts.labelled, "open": ctx.link(page="drift", slice=g.key)}
        for g in bad]))
