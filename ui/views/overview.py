"""Overview (executive): accuracy and its label-free estimate over time, SLO error budget and
burn, cost per 1,000 inferences, the most affected slices, and what is firing now."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import pandas as pd
import streamlit as st

from ui import charts, store
from ui.links import page_for_detector
from ui.nav import Context
from ui.queries import findings as qf
from ui.queries import labels as ql
from ui.queries import ops as qo
from ui.views import common
from ui.views.common import hhmm, num, pct


def cost_per_1k(cost_per_hour: float | None, events: int, span_ms: int) -> float | None:
    """Serving cost of 1,000 inferences over the span (None without a cost or events).

    >>> cost_per_1k(3.6, events=36_000, span_ms=3_600_000)
    0.1
    """
    if cost_per_hour is None or events <= 0:
        return None
    return cost_per_hour * (span_ms / 3_600_000) / (events / 1000)


def render(ctx: Context) -> None:
    common.header(f"Overview · {ctx.model}", ctx)
    series = store.get(ql.accuracy_series, ctx.model, ctx.versions, ctx.start_ms, ctx.end_ms)
    overall = common.total(w.counts for w in series)
    incidents = store.get(qf.incidents, ctx.start_ms, ctx.end_ms, ctx.model)
    alerts = (store.get(qo.alerts, ctx.start_ms, ctx.end_ms, ctx.model)
              if "alerts" in ctx.tables else None)
    firing = store.get(qo.firing_by_severity, ctx.model) if alerts is not None else None
    _kpis(ctx, overall, firing, incidents)
    panels = [[("Accuracy over time", lambda: _accuracy(ctx, series)),
               ("SLO error budget", lambda: _slo(ctx))],
              [("Most affected slices", lambda: _affected(ctx, incidents)),
               ("Firing now", lambda: _firing(ctx, alerts, incidents))]]
    for row in panels:  # two rows of two panels
        for column, (title, draw) in zip(st.columns(2), row):
            with column:
                st.subheader(title)
                draw()


def _kpis(ctx: Context, overall: ql.Counts, firing: Mapping[str, int] | None,
          incidents: tuple[qf.FindingPoint, ...]) -> None:
    lo, hi = overall.interval
    cols = st.columns(6)
    cols[0].metric("Inferences", f"{overall.n:,}", help="Accepted predictions in the range, all "
                   "versions.")
    cols[1].metric("Accuracy (labelled)", pct(overall.accuracy),
                   help=f"95 % CI {pct(lo)} – {pct(hi)} over {overall.labelled:,} labelled "
                        f"predictions ({pct(overall.coverage)} label coverage).")
    cols[2].metric("Mean confidence", pct(overall.mean_confidence),
                   help="Average max-softmax probability: moves before labels arrive.")
    cols[3].metric("Error rate", pct(overall.error_rate, 2))
    cost = cost_per_1k(ctx.settings.ui.cost_per_hour, overall.n, ctx.end_ms - ctx.start_ms)
    cols[4].metric("Cost / 1k inferences", num(cost, ".4f"),
                   help="ui.cost_per_hour × hours in range ÷ thousands of inferences"
                        if cost is not None else "Set ui.cost_per_hour (VITMON_UI__COST_PER_HOUR) "
                        "to the fleet's hourly cost to see this.")
    if firing is not None:
        cols[5].metric("Alerts firing", sum(firing.values()),
                       help=", ".join(f"{n} {sev}" for sev, n in sorted(firing.items()))
                       or "none")
    else:
        cols[5].metric("Windows in alert", len(incidents),
                       help="Detector findings in alert (the alert engine's table is not there).")


def _accuracy(ctx: Context, series: tuple[ql.WindowCounts, ...]) -> None:
    by_window: dict[int, list[ql.Counts]] = defaultdict(list)
    for w in series:
        by_window[w.window_start_ms].append(w.counts)
    rows = []
    for start, counts in sorted(by_window.items()):
        c = common.total(counts)
        if c.accuracy is not None:
            rows.append({"time": start, "value": c.accuracy, "series": "realised accuracy"})
        if c.mean_confidence is not None:
            rows.append({"time": start, "value": c.mean_confidence, "series": "mean confidence"})
    estimates = store.get(qf.detail_series, "performance", ctx.model, (ctx.version,), "all", "",
                          ("estimated_accuracy",), ctx.start_ms, ctx.end_ms)
    rows += [{"time": e.window_start_ms, "value": e.values["estimated_accuracy"],
              "series": f"label-free estimate ({ctx.version})"}
             for e in estimates if e.values.get("estimated_accuracy") is not None]
    if not rows:
        common.empty("No labels or predictions in this range",
                     "Accuracy needs ground truth on `vit.labels`; labels often arrive hours "
                     "later. Widen the time range or wait for labels.")
        return
    df = pd.DataFrame(rows)
    df["time"] = charts.to_time(df["time"])
    st.altair_chart(charts.time_lines(df, "accuracy", ".0%", zero=False), width="stretch")
    if not estimates:
        st.caption("The calibrated label-free estimate appears once the `performance` detector "
                   "runs with a reference (`vitmon reference capture`).")


def _slo(ctx: Context) -> None:
    points = common.slo_points(ctx, "Run `vitmon db upgrade` with a version that has SLOs.",
                               "No SLO evaluated for this model",
                               "Configure `slos:` (latency, availability or accuracy) in "
                               "vitmon.yaml; each SLO is judged every minute of event time.")
    if points is None:
        return
    latest = {p.slo: p for p in points}
    cols = st.columns(min(len(latest), 4))
    for col, p in zip(cols, latest.values()):
        worst = max((v for v in p.burn_rates.values() if v is not None), default=None)
        col.metric(f"{p.slo} ({p.sli}, {pct(p.objective, 2)})", pct(p.budget_remaining),
                   delta=f"max burn {num(worst, '.2f')}×", delta_color="off",
                   help="Error budget remaining over the compliance period; burn = how many "
                        "times faster than sustainable the budget is being spent.")
    df = pd.DataFrame([{"time": p.minute_ms, "value": p.budget_remaining, "series": p.slo}
                       for p in points if p.budget_remaining is not None])
    if not df.empty:
        df["time"] = charts.to_time(df["time"])
        st.altair_chart(charts.time_lines(df, "budget remaining", ".0%"), width="stretch")


def _affected(ctx: Context, incidents: tuple[qf.FindingPoint, ...]) -> None:
    if not incidents:
        common.empty("No slice in alert in this range",
                     "Every detector finding in the range is ok, warn or insufficient data.")
        return
    groups: dict[tuple[str, str], list[qf.FindingPoint]] = defaultdict(list)
    for p in incidents:
        groups[(p.version, p.slice)].append(p)
    rows = []
    for (version, slice_), pts in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:15]:
        newest = max(pts, key=lambda p: p.window_start_ms)
        rows.append({"version": version, "slice": slice_, "windows in alert": len(pts),
                     "detectors": ", ".join(sorted({p.detector for p in pts})),
                     "since": hhmm(min(p.window_start_ms for p in pts)),
                     "last": hhmm(newest.window_start_ms),
                     "open": ctx.link(page=page_for_detector(newest.detector), version=version,
                                      slice=slice_, detector=newest.detector,
                                      window_ms=newest.window_start_ms)})
    common.table(pd.DataFrame(rows))


def _firing(ctx: Context, alerts: tuple[qo.Alert, ...] | None,
            incidents: tuple[qf.FindingPoint, ...]) -> None:
    if alerts is None:
        common.findings_in_alert(ctx, incidents, 20, "The alert engine's tables are not in this "
                                 "database; showing the newest detector findings in alert instead.")
        return
    firing = [a for a in alerts if a.state == "firing"]
    if not firing:
        common.empty("Nothing firing", "No alert is firing for this model right now.")
        return
    firing.sort(key=lambda a: (a.severity != "page", -a.id))  # pages first
    common.table(pd.DataFrame([{
        "alert": a.rule, "severity": a.severity, "version": a.labels.get("model_version", ""),
        "slice": a.labels.get("slice", ""), "since": hhmm(a.fired_window_ms or a.first_window_ms),
        "summary": a.annotations.get("summary", ""),
        "open": a.annotations.get("dashboard_url", "")} for a in firing]))
