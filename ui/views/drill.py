"""Drill-down of one window: what the drift detectors stored for the UI (top features with
reference-vs-window histograms, class and confidence distributions, the embedding projection,
the inputs most unlike the reference) and pointers to example inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from ui import charts, store
from ui.nav import Context
from ui.queries import findings as qf
from ui.queries import samples as qs
from ui.views import common
from ui.views.common import pct

MAX_HISTOGRAMS = 4


def bin_labels(hist: Mapping[str, Any]) -> list[str]:
    """Labels of a stored histogram: categories, classes, or ``[lo, hi)`` from edges.

    >>> bin_labels({"edges": [0.0, 0.25, 1.0]})
    ['[0, 0.25)', '[0.25, 1)']
    >>> bin_labels({"classes": [0, 1]}), bin_labels({"categories": ["cam-1"]})
    (['0', '1'], ['cam-1'])
    """
    if "categories" in hist:
        return [str(c) for c in hist["categories"]]
    if "classes" in hist:
        return [str(c) for c in hist["classes"]]
    edges = list(hist.get("edges", ()))
    return [f"[{a:.3g}, {b:.3g})" for a, b in zip(edges[:-1], edges[1:])]


def _histogram(name: str, hist: Mapping[str, Any]) -> None:
    labels = bin_labels(hist)
    ref, win = list(hist.get("reference", ())), list(hist.get("window", ()))
    if not labels or len(ref) != len(labels) or len(win) != len(labels):
        st.caption(f"{name}: no histogram stored")
        return
    st.altair_chart(charts.histogram_compare(labels, ref, win, name), width="stretch")


def features(detail: qf.FindingDetail) -> None:
    """``feature_drift``: the per-feature table, ranked, and histograms of the top features."""
    d = detail.details
    rows = d.get("features") or []
    if not rows:
        st.caption(d.get("reason", "No feature was tested in this window."))
        return
    top = d.get("top_features") or [r["feature"] for r in rows[:MAX_HISTOGRAMS]]
    st.markdown("**Top drifting features:** " + ", ".join(f"`{f}`" for f in top[:5]))
    df = pd.DataFrame([{
        "feature": r.get("feature"), "status": common.STATUS_ICON.get(r.get("status"), ""),
        "test": r.get("test"), "statistic": r.get("statistic"), "threshold": r.get("threshold"),
        "p raw": r.get("p_value"), "p corrected": r.get("p_adjusted"), "PSI": r.get("psi"),
        "JS": r.get("js"), "Wasserstein/σ": r.get("wasserstein_norm"), "n": r.get("n"),
        "n ref": r.get("n_ref")} for r in rows])
    common.table(df, "", **{c: st.column_config.NumberColumn(format="%.3g")
                        for c in ("statistic", "PSI", "JS", "Wasserstein/σ")})
    hists = d.get("histograms") or {}
    names = [f for f in top if f in hists][:MAX_HISTOGRAMS]
    for col, name in zip(st.columns(max(len(names), 1)), names):
        with col:
            _histogram(name, hists[name])


def predictions(detail: qf.FindingDetail) -> None:
    """``prediction_drift``: class and confidence distributions, and the tests behind them."""
    d = detail.details
    hists = d.get("histograms") or {}
    left, right = st.columns(2)
    with left:
        if "class_distribution" in hists:
            _histogram("predicted class", hists["class_distribution"])
    with right:
        if "confidence" in hists:
            _histogram("confidence", hists["confidence"])
    tests = d.get("tests") or []
    if tests:
        common.table(pd.DataFrame([{
            "test": t.get("subject"), "kind": t.get("test"), "statistic": t.get("statistic"),
            "threshold": t.get("threshold"), "p raw": t.get("p_value"),
            "p corrected": t.get("p_adjusted"), "rejected": t.get("rejected")} for t in tests]), "",
            **{"statistic": st.column_config.NumberColumn(format="%.3g")})


def embeddings(detail: qf.FindingDetail) -> Sequence[str]:
    """``embedding_drift``: its mean and residual statistics vs their thresholds, the 2-D
    projection, and the event ids the domain classifier found most unlike the reference
    (returned, for sample pointers)."""
    d = detail.details
    cols = st.columns(4)
    cols[0].metric("Mean shift (variance-weighted)", common.num(d.get("mean_stat"), ".3g"),
                   help=f"threshold {common.num(d.get('mean_threshold'), '.3g')} at half this "
                        f"slice's level ({d.get('test', '?')}); residual energy t "
                        f"{common.num(d.get('residual_t'), '.3g')} (threshold "
                        f"{common.num(d.get('residual_threshold'), '.3g')})")
    cols[1].metric("p corrected", common.num(detail.point.p_value, ".2g"),
                   help=f"{common.P_CORRECTED_HELP}; raw (this slice's test, Bonferroni of "
                        f"mean {common.num(d.get('p_mean'), '.2g')} and residual "
                        f"{common.num(d.get('p_residual'), '.2g')}): "
                        f"{common.num(d.get('p_value_raw'), '.2g')}")
    cols[2].metric("Centroid cosine distance", common.num(d.get("centroid_cosine_distance"),
                                                          ".3g"))
    dc = d.get("domain_classifier") or {}
    cols[3].metric("Domain classifier AUC", common.num(dc.get("auc"), ".3f"),
                   help="0.5 = window indistinguishable from the reference")
    proj = d.get("projection") or {}
    if proj.get("reference") and proj.get("window"):
        st.altair_chart(charts.projection(proj["reference"], proj["window"]), width="stretch")
        st.caption("Reference vs window CLS embeddings on the reference's first two principal "
                   "axes.")
    return [m["event_id"] for m in dc.get("most_new", ()) if "event_id" in m]


def samples(ctx: Context, window_ms: int, window_end_ms: int, ids: Sequence[str]) -> None:
    """Sample pointers: the inputs most unlike the reference when the domain classifier ran,
    else the least confident predictions of the window and slice."""
    if ids:
        rows = store.get(qs.samples_by_id, tuple(ids))
        st.caption("Inputs the domain classifier found most unlike the reference:")
    else:
        rows = store.get(qs.samples_in_window, ctx.model, ctx.version, ctx.slice, window_ms,
                         window_end_ms)
        st.caption("Least confident predictions of this window and slice:")
    if not rows:
        common.empty("No stored predictions for this window",
                     "Predictions are kept for the label horizon, then pruned.")
        return
    common.table(pd.DataFrame([{
        "event_id": s.event_id, "time": common.hhmm(s.ts_ms), "camera": s.camera, "pred": s.pred,
        "label": s.label, "confidence": pct(s.confidence), "sample_uri": s.sample_uri,
        "input_sha256": (s.input_sha256 or "")[:16]} for s in rows]))
