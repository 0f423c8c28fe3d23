"""Drift: score vs threshold over time per detector and slice; for a chosen window, what moved
(features, classes, confidence, embeddings), example inputs, whether latency, errors and
accuracy moved with it, and the Evidently report for that window."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from ui import charts, store
from ui.links import format_time
from ui.nav import Context
from ui.queries import findings as qf
from ui.queries import labels as ql
from ui.queries.findings import FindingPoint
from ui.views import common, drill, thumbs
from ui.views.common import hhmm, num

DRIFT_DETECTORS = ("feature_drift", "embedding_drift", "prediction_drift")


@dataclass(frozen=True, slots=True)
class AlertRun:
    """Consecutive windows in ``alert`` (windows with insufficient data between them do not
    break a run): when it started, how many windows, and when it cleared (None: ongoing)."""

    first: FindingPoint
    windows: int
    cleared_ms: int | None


def alert_run(points: Sequence[FindingPoint], at_ms: int) -> AlertRun | None:
    """The run of alert windows that contains the window starting at ``at_ms`` (None if that
    window is not in alert).

    >>> p = lambda t, s: FindingPoint("d", "m", "v", "all", t, t + 1, s, "none", None, None,
    ...                              None, 0, "")
    >>> pts = [p(0, "ok"), p(1, "alert"), p(2, "insufficient_data"), p(3, "alert"), p(4, "ok")]
    >>> r = alert_run(pts, 3)
    >>> r.first.window_start_ms, r.windows, r.cleared_ms
    (1, 2, 4)
    >>> alert_run(pts, 4) is None
    True
    """
    index = {q.window_start_ms: i for i, q in enumerate(points)}
    i = index.get(at_ms)
    if i is None or points[i].status != "alert":
        return None
    lo = i
    for j in range(i - 1, -1, -1):
        if points[j].status == "alert":
            lo = j
        elif points[j].status != "insufficient_data":
            break
    hi, cleared = i, None
    for j in range(i + 1, len(points)):
        if points[j].status == "alert":
            hi = j
        elif points[j].status != "insufficient_data":
            cleared = points[j].window_start_ms
            break
    return AlertRun(points[lo], sum(q.status == "alert" for q in points[lo:hi + 1]), cleared)


def render(ctx: Context) -> None:
    common.header("Drift", ctx)
    keys = store.get(qf.keys_in_range, ctx.model, ctx.start_ms, ctx.end_ms)
    detectors = sorted({d for d, v, s in keys if v == ctx.version and s == ctx.slice},
                       key=lambda d: (d not in DRIFT_DETECTORS, d))
    if not detectors:
        common.empty("No findings for this version and slice",
                     "Pick another slice or widen the time range; a slice appears once one of "
                     "its windows has been evaluated.")
        return
    wanted = ctx.view.detector if ctx.view.detector in detectors else detectors[0]
    detector = st.selectbox("Detector", detectors, index=detectors.index(wanted))
    points = store.get(qf.finding_series, detector, ctx.model, ctx.version, ctx.slice,
                       ctx.start_ms, ctx.end_ms)
    window = _pick_window(ctx, points)
    if ctx.view.detector != detector or ctx.view.window_ms != window.window_start_ms:
        st.query_params["detector"] = detector
        st.query_params["window"] = format_time(window.window_start_ms)
    _verdict(detector, points, window)
    st.altair_chart(charts.score_vs_threshold(_frame(points), window.window_start_ms),
                    width="stretch")
    if all(p.status == "no_reference" for p in points):
        common.empty("No reference profile",
                     f"`{detector}` compares windows with a reference. Capture one: `vitmon "
                     f"reference capture --model {ctx.model} --version {ctx.version} --from T "
                     f"--to T` (or `--file`), or set `models.{ctx.model}.baseline_version`.")
    st.subheader(f"Window {hhmm(window.window_start_ms)} – {hhmm(window.window_end_ms)[11:]} UTC")
    _window(ctx, window)
    st.subheader("Did latency, errors or accuracy move with it?")
    _comoving(ctx, alert_run(points, window.window_start_ms))
    _evidently(ctx, window)


def _frame(points: tuple[qf.FindingPoint, ...]) -> pd.DataFrame:
    df = pd.DataFrame([{"time": p.window_start_ms, "score": p.score, "threshold": p.threshold,
                        "status": p.status, "p_corrected": p.p_value, "n": p.n} for p in points])
    df["time"] = charts.to_time(df["time"])
    return df


def _pick_window(ctx: Context, points: tuple[qf.FindingPoint, ...]) -> qf.FindingPoint:
    by_start = {p.window_start_ms: p for p in points}
    default = ctx.view.window_ms if ctx.view.window_ms in by_start else next(
        (p.window_start_ms for p in reversed(points) if p.status == "alert"),
        points[-1].window_start_ms)
    starts = list(by_start)
    chosen = st.select_slider(
        "Window", options=starts, value=default,
        format_func=lambda s: hhmm(s)[11:] + (" (alert)" if by_start[s].status == "alert" else ""),
        help="Pick a window to drill into (newest alert window by default).")
    return by_start[chosen]


def _verdict(detector: str, points: tuple[qf.FindingPoint, ...], window: qf.FindingPoint) -> None:
    w = window
    figures = (f"score **{num(w.score, '.4g')}** vs threshold **{num(w.threshold, '.4g')}**, "
               f"p corrected = {num(w.p_value, '.2g')}, n = {w.n:,} ({w.test})")
    run = alert_run(points, w.window_start_ms)
    if run is not None:
        until = ("still in alert" if run.cleared_ms is None
                 else f"cleared at {hhmm(run.cleared_ms)[11:]}")
        st.error(f"**{detector} in alert since {hhmm(run.first.window_start_ms)} UTC** "
                 f"({run.windows} window{'s' if run.windows > 1 else ''}, {until}). "
                 f"Selected window: {figures}.")
    else:
        st.success(f"{detector}: selected window {common.STATUS_ICON.get(w.status, w.status)}: "
                   f"{figures}. Newest window: {common.STATUS_ICON.get(points[-1].status)}.")
    st.caption(common.P_NOTE)  # also for the window's tables below (drill: p_note="")


def _window(ctx: Context, window: qf.FindingPoint) -> None:
    found = {d: store.get(qf.finding_detail, d, ctx.model, ctx.version, ctx.slice,
                          window.window_start_ms) for d in (*DRIFT_DETECTORS, window.detector)}
    ids: list[str] = []
    if found.get("feature_drift"):
        st.markdown("##### Input features (`feature_drift`)")
        drill.features(found["feature_drift"])
    if found.get("prediction_drift"):
        st.markdown("##### Predictions (`prediction_drift`)")
        drill.predictions(found["prediction_drift"])
    if found.get("embedding_drift"):
        st.markdown("##### CLS embeddings (`embedding_drift`)")
        ids = list(drill.embeddings(found["embedding_drift"]))
    if not any(found.get(d) for d in DRIFT_DETECTORS):
        detail = found.get(window.detector)
        st.caption("No drift detector findings for this window; the selected finding's details:")
        if detail is not None:
            st.json(dict(detail.details), expanded=False)
    st.markdown("##### Example inputs")
    thumbs.compare(ctx, window.window_start_ms, window.window_end_ms)
    drill.samples(ctx, window.window_start_ms, window.window_end_ms, ids)


def _comoving(ctx: Context, run: AlertRun | None) -> None:
    marks = [run.first.window_start_ms] if run else []
    traffic = store.get(qf.traffic_series, ctx.model, (ctx.version,), ctx.slice, ctx.start_ms,
                        ctx.end_ms)
    accuracy = store.get(ql.slice_window_accuracy, ctx.model, ctx.version, ctx.slice,
                         ctx.start_ms, ctx.end_ms)
    cols = st.columns(3)
    frames = (
        ("p99 latency (ms)", ".0f", [(t.window_start_ms, t.p99_ms) for t in traffic]),
        ("error rate", ".1%", [(t.window_start_ms, t.error_rate) for t in traffic]),
        ("accuracy (labelled)", ".0%", [(w.window_start_ms, w.counts.accuracy) for w in accuracy]),
    )
    for col, (title, fmt, values) in zip(cols, frames):
        df = pd.DataFrame([{"time": t, "value": v, "series": title} for t, v in values
                           if v is not None])
        with col:
            if df.empty:
                common.empty(f"No {title}", "No evaluated window for this slice in the range.")
                continue
            df["time"] = charts.to_time(df["time"])
            st.altair_chart(charts.time_lines(df, title, fmt, marks), width="stretch")


def _evidently(ctx: Context, window: qf.FindingPoint) -> None:
    st.subheader("Evidently report")
    cmd = ["vitmon", "report", "drift", "--model", ctx.model, "--version", ctx.version,
           "--slice", ctx.slice, "--window-start", format_time(window.window_start_ms),
           "--out", "drift-report.html"]
    st.caption("Evidently's data drift report of this window against the reference, for a deep "
               "dive. It replays the window's events from Kafka (the UI itself reads only "
               "PostgreSQL), so it runs from the command line:")
    st.code(shlex.join(cmd), language="bash")
