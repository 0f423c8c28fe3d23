"""Versions: baseline vs canary side by side on the same period: traffic, errors, latency,
confidence, accuracy with intervals, predicted classes, drift alerts and the version-health
verdict ("rollback recommended")."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ui import charts, store
from ui.nav import Context
from ui.queries import findings as qf
from ui.queries import labels as ql
from ui.views import common
from ui.views.common import hhmm, num, pct


def pick_pair(versions: tuple[str, ...], baseline: str | None,
              chosen: str) -> tuple[str, str | None]:
    """(baseline, canary): the configured baseline (else the version with most traffic) and the
    chosen version, or the next one when the chosen version is the baseline.

    >>> pick_pair(("1", "2"), None, "1"), pick_pair(("1", "2", "3"), "1", "3"), pick_pair(("1",), None, "1")
    (('1', '2'), ('1', '3'), ('1', None))
    """
    base = baseline if baseline in versions else versions[0]
    if chosen != base:
        return base, chosen
    return base, next((v for v in versions if v != base), None)


def render(ctx: Context) -> None:
    common.header("Versions: baseline vs canary", ctx)
    configured = ctx.settings.models.get(ctx.model)
    base, canary = pick_pair(ctx.versions, configured.baseline_version if configured else None,
                             ctx.version)
    if canary is None:
        common.empty("Only one version in this range",
                     f"`{base}` is the only version of `{ctx.model}` with traffic; a canary "
                     "shows up here as soon as it serves.")
    summaries = {s.version: s for s in store.get(ql.version_summaries, ctx.model, ctx.start_ms,
                                                  ctx.end_ms)}
    pair = [v for v in (base, canary) if v is not None]
    cols = st.columns(len(pair))
    for col, version in zip(cols, pair):
        with col:
            _card(version, "baseline" if version == base else "canary", summaries.get(version))
    st.subheader("Version health")
    _verdicts(ctx, pair)
    if canary is None or canary not in summaries:
        return
    s = summaries[canary]
    st.caption(f"Same period for both: the canary served from {hhmm(s.first_ms)} to "
               f"{hhmm(s.last_ms)} UTC; compare over that span for a like-for-like view.")
    st.subheader("Over time")
    _over_time(ctx, pair)
    st.subheader("Predicted classes")
    shares = store.get(ql.class_shares, ctx.model, tuple(pair), ctx.start_ms, ctx.end_ms)
    totals = {v: sum(c.n for c in shares if c.version == v) or 1 for v in pair}
    df = pd.DataFrame([{"class": str(c.pred), "share": c.n / totals[c.version],
                        "version": c.version} for c in shares])
    if not df.empty:
        st.altair_chart(charts.bars(df, "class", "share", "version", ".0%"), width="stretch")


def _card(version: str, role: str, s: ql.VersionSummary | None) -> None:
    st.markdown(f"#### `{version}` · {role}")
    if s is None:
        common.empty("No traffic in this range", "Widen the time range.")
        return
    c = s.counts
    lo, hi = c.interval
    a, b = st.columns(2)
    a.metric("Predictions", f"{c.n:,}")
    b.metric("Error rate", pct(c.error_rate, 2))
    a.metric("p50 / p95 / p99 latency", f"{num(s.p50_ms, '.0f')} / {num(s.p95_ms, '.0f')} / "
             f"{num(s.p99_ms, '.0f')} ms")
    b.metric("Mean confidence", pct(c.mean_confidence))
    a.metric("Accuracy (labelled)", pct(c.accuracy),
             help=f"95 % CI {pct(lo)} – {pct(hi)}, {c.labelled:,} labelled")
    b.metric("Label coverage", pct(c.coverage))


def _verdicts(ctx: Context, pair: list[str]) -> None:
    """The canary-vs-baseline verdict on the chosen slice in full, the other slices in a table."""
    health = [h for h in store.get(qf.latest_findings, "version_health", ctx.model, ctx.start_ms,
                                   ctx.end_ms) if h.point.version in pair]
    verdicts = [(h, sub) for h in health for sub in h.subs if sub.subject.startswith("vs ")]
    if not verdicts:
        st.caption("No canary-vs-baseline `version_health` findings in this range (they need "
                   "`models.<model>.baseline_version` and canary traffic).")
    for h, sub in verdicts:
        if h.point.slice != ctx.slice:
            continue
        d = sub.details
        text = (f"`{h.point.version}` {sub.subject} on `{h.point.slice}`, window "
                f"{hhmm(h.point.window_start_ms)}: **{d.get('verdict', sub.status)}**")
        if d.get("worse"):
            text += " (worse: " + ", ".join(d["worse"]) + ")"
        (st.error if sub.status == "alert" else st.info)(text)
        common.table(pd.DataFrame([{
            "metric": t.get("metric"), "canary": t.get("canary"), "baseline": t.get("baseline"),
            "effect": t.get("effect"), "p raw": t.get("p_value"), "p corrected": t.get("p_adjusted"),
            "material": t.get("material"), "worse": t.get("worse")}
            for t in d.get("tests", ())]),
            f"{common.VERSIONS_P_NOTE}: {common.num(d.get('alpha'), '.2g')} for this window's "
            "look and slices.",
            **{c: st.column_config.NumberColumn(format="%.4g")
               for c in ("canary", "baseline", "effect")},
            **{"p corrected": st.column_config.NumberColumn(
                format="%.2e", help=common.VERSIONS_P_NOTE.replace("**", ""))})
    others = [(h, sub) for h, sub in verdicts if h.point.slice != ctx.slice]
    if others:
        with st.expander(f"Other slices ({len(others)})"):
            common.table(pd.DataFrame([{
                "slice": h.point.slice, "version": h.point.version, "compared": sub.subject,
                "verdict": sub.details.get("verdict", sub.status),
                "worse": ", ".join(sub.details.get("worse", ())),
                "window": hhmm(h.point.window_start_ms),
                "open": ctx.link(page="versions", version=h.point.version, slice=h.point.slice)}
                for h, sub in others]))
    drift = [p for p in store.get(qf.incidents, ctx.start_ms, ctx.end_ms, ctx.model)
             if p.version in pair]
    if drift:
        newest = " (the newest 500)" if len(drift) >= 500 else ""
        with st.expander(f"{len(drift)} windows in alert across these versions{newest}"):
            common.table(common.findings_frame(drift[:100], ctx))


def _over_time(ctx: Context, pair: list[str]) -> None:
    traffic = store.get(qf.traffic_series, ctx.model, tuple(pair), "all", ctx.start_ms,
                        ctx.end_ms)
    acc = store.get(ql.accuracy_series, ctx.model, tuple(pair), ctx.start_ms, ctx.end_ms)
    left, right = st.columns(2)
    lat = pd.DataFrame([{"time": t.window_start_ms, "value": t.p99_ms, "series": t.version}
                        for t in traffic if t.p99_ms is not None])
    band = pd.DataFrame([{"time": w.window_start_ms, "value": w.counts.accuracy,
                          "lo": w.counts.interval[0], "hi": w.counts.interval[1],
                          "series": w.version} for w in acc if w.counts.accuracy is not None])
    with left:
        if lat.empty:
            common.empty("No latency figures", "No evaluated `traffic` windows in range.")
        else:
            lat["time"] = charts.to_time(lat["time"])
            st.altair_chart(charts.time_lines(lat, "p99 latency (ms)", ".0f"), width="stretch")
    with right:
        if band.empty:
            common.empty("No labels yet", "Accuracy per window appears as labels arrive.")
        else:
            band["time"] = charts.to_time(band["time"])
            st.altair_chart(charts.band_line(band, "accuracy (95 % CI)"), width="stretch")
