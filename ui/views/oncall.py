"""On-call: incidents first (one cause each, with timeline, evidence links and whether latency
or the GPUs moved with it), every alert, P50/P95/P99 latency and error rate beside GPU memory,
utilisation, cold starts and errors by code, SLO burn rates by window, model version health,
consumer lag and rejected events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import streamlit as st

from ui import charts, store
from ui.nav import Context
from ui.queries import findings as qf
from ui.queries import labels as ql
from ui.queries import ops as qo
from ui.views import common, infra
from ui.views import incidents as incidents_view
from ui.views.common import hhmm, num, pct

REJECTED_LOOKBACK = timedelta(hours=24)


def render(ctx: Context) -> None:
    common.header("On-call", ctx)
    incidents = store.get(qf.incidents, ctx.start_ms, ctx.end_ms, ctx.model)
    if "alerts" in ctx.tables:
        st.subheader("Incidents")
        incidents_view.render(ctx)
    with st.expander("Every alert", expanded="alerts" not in ctx.tables):
        _alerts(ctx, incidents)
    st.subheader(f"Latency and errors · {ctx.version} · {ctx.slice}")
    _latency(ctx, incidents)
    st.subheader(f"GPU memory, utilisation, cold starts and errors · {ctx.version} · {ctx.slice}")
    infra.render(ctx, sorted({p.window_start_ms for p in incidents
                              if p.version == ctx.version and p.slice == ctx.slice}))
    st.subheader("SLO burn rates")
    _burn(ctx)
    left, right = st.columns([3, 2])
    with left:
        st.subheader("Model version health")
        _versions(ctx)
    with right:
        st.subheader("Consumer lag")
        _lag(ctx)
    st.subheader("Rejected events (last 24 h received)")
    _rejected()


def _alerts(ctx: Context, incidents: tuple[qf.FindingPoint, ...]) -> None:
    if "alerts" not in ctx.tables:
        common.findings_in_alert(ctx, incidents, 50, "No alert tables in this database (alert "
                                 "engine not migrated): detector findings in alert, newest first.")
        return
    alerts = store.get(qo.alerts, ctx.start_ms, ctx.end_ms, ctx.model)
    if not alerts:
        common.empty("No alerts in this range", "Nothing fired, and nothing is open now.")
        return
    order = {"firing": 0, "pending": 1, "suppressed": 2, "resolved": 3}
    alerts = tuple(sorted(alerts, key=lambda a: (order.get(a.state, 9), -a.id)))
    common.table(pd.DataFrame([{
        "state": a.state, "alert": a.rule, "severity": a.severity,
        "version": a.labels.get("model_version", ""), "slice": a.labels.get("slice", ""),
        "detector": a.labels.get("detector", ""),
        "since": hhmm(a.fired_window_ms or a.first_window_ms),
        "until": hhmm(a.resolved_window_ms) if a.resolved_window_ms else "now",
        "delivery": a.delivered, "summary": a.annotations.get("summary", ""),
        "runbook": a.annotations.get("runbook_url", ""),
        "open": a.annotations.get("dashboard_url", "")} for a in alerts]),
        runbook=st.column_config.LinkColumn("runbook", display_text="runbook"))
    # one row per (rule, version, slice): an alert that fired, resolved and fired again reads
    # as one line with gaps
    bars = [{"alert": f"{a.rule} · {a.labels.get('model_version', '')} · "
                      f"{a.labels.get('subject') or a.labels.get('slice', '')}",
             "start": a.first_window_ms, "severity": a.severity, "state": a.state,
             "end": max(a.resolved_window_ms or a.last_window_ms, a.first_window_ms) + 60_000}
            for a in alerts[:100]]
    df = pd.DataFrame(bars)
    df["start"], df["end"] = charts.to_time(df["start"]), charts.to_time(df["end"])
    st.altair_chart(charts.timeline(df), width="stretch")
    st.markdown("**State changes**")
    with st.container():
        history = store.get(qo.transitions, tuple(a.id for a in alerts[:40]))
        common.table(pd.DataFrame([{"alert": t.alert_id, "from": t.from_state, "to": t.to_state,
                                    "window": hhmm(t.window_start_ms), "at (wall)": t.at}
                                   for t in history]))


def _latency(ctx: Context, incidents: tuple[qf.FindingPoint, ...]) -> None:
    points = store.get(qf.traffic_series, ctx.model, (ctx.version,), ctx.slice, ctx.start_ms,
                       ctx.end_ms)
    if not points:
        common.empty("No traffic figures", "The `traffic` detector has no evaluated window with "
                     "enough events for this version and slice in the range.")
        return
    onsets = sorted({p.window_start_ms for p in incidents
                     if p.version == ctx.version and p.slice == ctx.slice})
    lat = pd.DataFrame([{"time": p.window_start_ms, "value": v, "series": name}
                        for p in points for name, v in (("p50", p.p50_ms), ("p95", p.p95_ms),
                                                        ("p99", p.p99_ms)) if v is not None])
    err = pd.DataFrame([{"time": p.window_start_ms, "value": p.error_rate, "series": "error rate"}
                        for p in points])
    for df in (lat, err):
        df["time"] = charts.to_time(df["time"])
    left, right = st.columns(2)
    left.altair_chart(charts.time_lines(lat, "latency (ms)", ".0f", onsets[:1]),
                      width="stretch")
    right.altair_chart(charts.time_lines(err, "error rate", ".2%", onsets[:1]), width="stretch")
    newest = points[-1]
    st.caption(f"Newest window {hhmm(newest.window_start_ms)}: {newest.n:,} events, "
               f"p50 {num(newest.p50_ms, '.0f')} ms, p95 {num(newest.p95_ms, '.0f')} ms, "
               f"p99 {num(newest.p99_ms, '.0f')} ms, errors {pct(newest.error_rate, 2)}."
               + (" Red rule: first window in alert for this slice." if onsets else ""))


def _burn(ctx: Context) -> None:
    points = common.slo_points(ctx, "This database has no SLO tables yet (`vitmon db upgrade`).",
                               "No SLO evaluated", "Configure `slos:` in vitmon.yaml to get burn "
                               "rates.")
    if points is None:
        return
    latest = {p.slo: p for p in points}
    rows = []
    for p in latest.values():
        for t in p.tiers:
            rows.append({"SLO": p.slo, "tier": t.get("name"), "severity": t.get("severity"),
                         "threshold": t.get("threshold"),
                         "burn (long)": t.get("burn_long"), "long window": t.get("long_window"),
                         "burn (short)": t.get("burn_short"), "short window": t.get("short_window"),
                         "firing": "YES" if t.get("firing") else "no",
                         "budget left": pct(p.budget_remaining)})
    st.caption(f"At {hhmm(max(p.minute_ms for p in latest.values()))}: a tier fires when both its "
               "long and short window burn faster than its threshold (SRE Workbook).")
    common.table(pd.DataFrame(rows), **{
        c: st.column_config.NumberColumn(format="%.2f×")
        for c in ("threshold", "burn (long)", "burn (short)")})
    # the 1-hour burn of each SLO against the fast-burn page threshold: the line to watch
    df = pd.DataFrame([{"time": p.minute_ms, "value": p.burn_rates["1h"], "series": p.slo}
                       for p in points if p.burn_rates.get("1h") is not None])
    page = [t.get("threshold") for p in latest.values() for t in p.tiers
            if t.get("long_window") == "1h" and t.get("threshold")]
    if not df.empty:
        df["time"] = charts.to_time(df["time"])
        st.altair_chart(charts.time_lines(df, "1 h burn rate (×)", ".1f", levels=page[:1]),
                        width="stretch")


def _versions(ctx: Context) -> None:
    health = store.get(qf.latest_findings, "version_health", ctx.model, ctx.start_ms, ctx.end_ms)
    verdicts = {h.point.version: (s, h.point.window_start_ms) for h in health
                if h.point.slice == "all" for s in h.subs if s.subject.startswith("vs ")}
    summaries = store.get(ql.version_summaries, ctx.model, ctx.start_ms, ctx.end_ms)
    total_n = sum(s.counts.n for s in summaries) or 1
    rows = []
    for s in summaries:
        sub, window = verdicts.get(s.version, (None, None))
        rows.append({
            "version": s.version, "traffic": pct(s.counts.n / total_n),
            "error rate": pct(s.counts.error_rate, 2), "p99 ms": num(s.p99_ms, ".0f"),
            "accuracy": pct(s.counts.accuracy), "mean confidence": pct(s.counts.mean_confidence),
            "health": (f"{common.STATUS_ICON.get(sub.status, sub.status)} {sub.subject}: "
                       f"{sub.details.get('verdict', '')} ({hhmm(window)})" if sub else "–"),
            "open": ctx.link(page="versions", version=s.version)})
    common.table(pd.DataFrame(rows))


def _lag(ctx: Context) -> None:
    parts = store.get(qo.consumer_lag, ctx.settings.kafka.group)
    if not parts:
        common.empty("No committed offsets", f"Consumer group `{ctx.settings.kafka.group}` has not "
                     "committed a checkpoint yet.")
        return
    common.table(pd.DataFrame([{"topic": p.topic, "partition": p.partition,
                                "committed": p.committed, "lag": p.lag,
                                "updated (wall)": p.updated_at} for p in parts]))


def _rejected() -> None:
    # floored to the minute: the cache key stays the same between re-runs
    since = (datetime.now(timezone.utc) - REJECTED_LOOKBACK).replace(second=0, microsecond=0)
    by_reason, recent = store.get(qo.rejected, since)
    if not by_reason:
        common.empty("No rejected events", "Nothing failed validation in the last 24 hours.")
        return
    left, right = st.columns([1, 2])
    left.dataframe(pd.DataFrame([{"reason": r.reason, "events": r.n} for r in by_reason]),
                   hide_index=True, width="stretch")
    right.dataframe(pd.DataFrame([{
        "received": r.received_at, "reason": r.reason, "detail": r.detail,
        "where": f"{r.topic}[{r.partition}]@{r.offset}", "event_id": r.event_id}
        for r in recent]), hide_index=True, width="stretch")
