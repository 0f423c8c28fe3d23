"""The On-call page's first section: incidents, not alert rows. Each incident has one cause,
its most specific slice, the slices and detectors it explains, start, state, severity, what
Alertmanager was told, a timeline of its alerts, whether latency or the GPUs moved with it, and
links to the evidence (drift window, slice accuracy, version comparison).

Incidents come from the alert engine's ``incidents`` table when the database has it (migration
0004), else from :func:`ui.incident_groups.group_alerts` (model, version, detector family, root
slice)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import pandas as pd
import streamlit as st

from ui import charts, store
from ui.incident_groups import IncidentGroup, from_table, group_alerts
from ui.nav import Context
from ui.queries import findings as qf
from ui.queries import incidents as qi
from ui.queries import ops as qo
from ui.views import common
from ui.views.common import hhmm, num

#: A signal "moved with" an incident when its median over the incident's windows differs from
#: its median over the windows before by more than this share.
MOVED = {"p99 latency": 0.5, "error rate": 1.0, "GPU memory p95": 0.2, "GPU utilisation p50": 0.3}
BEFORE_WINDOWS = 6


def moved(before: Sequence[float], during: Sequence[float], share: float) -> bool | None:
    """Whether the median moved by more than ``share`` (None: too few windows to say).

    >>> moved([20, 22, 21], [300, 340], 0.5), moved([20, 22], [23], 0.5), moved([], [5], 0.5)
    (True, False, None)
    """
    if not before or not during:
        return None
    b, d = statistics.median(before), statistics.median(during)
    return abs(d - b) > share * max(abs(b), 1e-9)


def render(ctx: Context) -> None:
    groups = _groups(ctx)
    if not groups:
        common.empty("No incidents in this range", "Nothing fired, and nothing is open now.")
        return
    opened = next((g for g in groups if g.key == ctx.view.incident), None)
    if ctx.view.incident and opened is None:
        st.warning(f"Incident `{ctx.view.incident}` is not in this time range; widen it.")
    common.table(pd.DataFrame([{
        "state": g.state, "severity": g.severity, "cause": f"{g.family} · {g.slice}",
        "version": g.model_version, "since": hhmm(g.first_window_ms),
        "until": hhmm(g.resolved_window_ms) if g.resolved_window_ms else "now",
        "detectors": ", ".join(g.detectors), "explains": ", ".join(g.explained_slices) or "–",
        "alerts": len(g.members), "Alertmanager": g.notification,
        "open": ctx.link(incident=g.key)} for g in groups]))
    bars = pd.DataFrame([{
        "alert": f"{g.family} · {g.model_version} · {g.slice}", "severity": g.severity,
        # the timeline's colours are alert states: an open incident reads as firing
        "state": "firing" if g.state == "open" else "resolved", "start": g.first_window_ms,
        "end": (g.resolved_window_ms or g.last_window_ms) + ctx.settings.windows.size_s * 1000}
        for g in groups])
    bars["start"], bars["end"] = charts.to_time(bars["start"]), charts.to_time(bars["end"])
    st.altair_chart(charts.timeline(bars), width="stretch")
    for g in ([opened] if opened else []) + [g for g in groups if g is not opened][:12]:
        label = (f"{'OPEN' if g.state == 'open' else 'resolved'} · {g.severity} · {g.family} on "
                 f"{g.slice} · {g.model_version} · since {hhmm(g.first_window_ms)}")
        with st.expander(label, expanded=g is opened):
            _incident(ctx, g)


def _groups(ctx: Context) -> list[IncidentGroup]:
    if "incidents" not in ctx.tables:
        return group_alerts(store.get(qo.alerts, ctx.start_ms, ctx.end_ms, ctx.model))
    found = list(store.get(qi.incidents, ctx.start_ms, ctx.end_ms, ctx.model))
    wanted = ctx.view.incident
    if wanted and wanted.isdigit() and all(str(i.id) != wanted for i in found):
        linked = store.get(qi.incident, int(wanted))  # an alert's link, outside the range
        if linked is not None and linked.model == ctx.model:
            found.insert(0, linked)
    return [from_table(i, store.get(qi.incident_alerts, i.id)) for i in found]


def _incident(ctx: Context, g: IncidentGroup) -> None:
    version = g.model_version if g.model_version in ctx.versions else ctx.version
    drift = next((d for d in g.detectors if "drift" in d), g.detectors[0])
    st.markdown(
        f"**Cause:** `{', '.join(g.detectors)}` on **{g.slice}** of {g.model} {g.model_version}"
        f" · **{g.state}** · severity **{g.severity}** · from {hhmm(g.first_window_ms)} to "
        + (hhmm(g.resolved_window_ms) if g.resolved_window_ms else "now")
        + (f" · explains {', '.join(f'`{s}`' for s in g.explained_slices)}"
           if g.explained_slices else "") + f" · {g.notification}.")
    st.markdown(_comoving_line(ctx, g, version))
    links = {"Drift window": ctx.link(page="drift", version=version, slice=g.slice,
                                      detector=drift, window_ms=g.first_window_ms),
             "Slice accuracy": ctx.link(page="slices", version=version, slice=g.slice),
             "Version comparison": ctx.link(page="versions", version=version)}
    st.markdown("**Evidence:** " + " · ".join(f"[{k}]({v})" for k, v in links.items()))
    size = ctx.settings.windows.size_s * 1000
    bars = pd.DataFrame([{
        "alert": f"{m.alertname} · {m.slice} · {m.detector}", "severity": m.severity,
        "state": m.state, "start": m.first_window_ms,
        "end": (m.end_window_ms if m.end_window_ms is not None else g.last_window_ms) + size}
        for m in g.members])
    bars["start"], bars["end"] = charts.to_time(bars["start"]), charts.to_time(bars["end"])
    st.altair_chart(charts.timeline(bars), width="stretch")


def _comoving_line(ctx: Context, g: IncidentGroup, version: str) -> str:
    """"Latency/GPU moved with it: yes/no", from the windows before vs during the incident."""
    size = ctx.settings.windows.size_s * 1000
    lo = g.first_window_ms - BEFORE_WINDOWS * size
    hi = (g.resolved_window_ms or g.last_window_ms) + size
    traffic = store.get(qf.traffic_series, ctx.model, (version,), g.slice, lo, hi)
    infra = store.get(qf.detail_series, "infra", ctx.model, (version,), g.slice, "", ("infra",),
                      lo, hi)
    series: dict[str, list[tuple[int, float]]] = {
        "p99 latency": [(t.window_start_ms, t.p99_ms) for t in traffic if t.p99_ms is not None],
        "error rate": [(t.window_start_ms, t.error_rate) for t in traffic],
        "GPU memory p95": [(p.window_start_ms, v) for p in infra
                           if (v := ((p.values.get("infra") or {}).get("gpu_mem_mb") or {})
                               .get("p95")) is not None],
        "GPU utilisation p50": [(p.window_start_ms, v) for p in infra
                                if (v := ((p.values.get("infra") or {}).get("gpu_util") or {})
                                    .get("p50")) is not None]}
    parts = []
    for name, points in series.items():
        before = [v for t, v in points if t < g.first_window_ms]
        during = [v for t, v in points if t >= g.first_window_ms]
        verdict = moved(before, during, MOVED[name])
        if verdict is None:
            continue
        b, d = statistics.median(before), statistics.median(during)
        fmt = ".1%" if name == "error rate" else ".0%" if "utilisation" in name else ".0f"
        parts.append(f"{name} {'**yes**' if verdict else 'no'} ({num(b, fmt)} → {num(d, fmt)})")
    if not parts:
        return "**Latency/GPU moved with it:** not enough windows before the incident to say."
    latency_gpu = [p for p in parts if p.startswith(("p99", "GPU"))]
    yes = any("**yes**" in p for p in latency_gpu)
    return (f"**Latency/GPU moved with it: {'yes' if yes else 'no'}** — " + "; ".join(parts)
            + f" (median of the {BEFORE_WINDOWS} windows before vs during).")
