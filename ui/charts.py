"""Altair charts for the pages. Each function takes plain columns (lists or a DataFrame with the
documented columns) and returns a chart; no queries, no Streamlit calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

STATUS_COLORS = {"ok": "#2e7d32", "warn": "#f9a825", "alert": "#c62828",
                 "insufficient_data": "#9e9e9e", "no_reference": "#8d6e63"}
SOURCE_COLORS = {"reference": "#90a4ae", "window": "#d84315"}
_STATUS_SCALE = alt.Scale(domain=list(STATUS_COLORS), range=list(STATUS_COLORS.values()))
_SOURCE_SCALE = alt.Scale(domain=list(SOURCE_COLORS), range=list(SOURCE_COLORS.values()))
HEIGHT = 220


def to_time(ms: Sequence[int] | pd.Series) -> pd.Series:
    """Epoch milliseconds -> timezone-aware UTC timestamps (Vega shows them as such)."""
    return pd.to_datetime(pd.Series(ms, dtype="int64"), unit="ms", utc=True)


def _time_axis(title: str = "window start (UTC)") -> alt.X:
    return alt.X("time:T", title=title, axis=alt.Axis(format="%H:%M", labelOverlap=True))


def score_vs_threshold(df: pd.DataFrame, selected_ms: int | None = None) -> alt.LayerChart:
    """Columns: time, score, threshold, status, p_corrected, n. Points coloured by status; the
    threshold dashed; the selected window marked by a vertical rule."""
    base = alt.Chart(df).encode(_time_axis())
    tooltip = ["time:T", "status:N", alt.Tooltip("score:Q", format=".4g"),
               alt.Tooltip("threshold:Q", format=".4g"),
               alt.Tooltip("p_corrected:Q", format=".3g", title="p corrected"), "n:Q"]
    layers = [
        base.mark_line(color="#546e7a").encode(y=alt.Y("score:Q", title="score")),
        base.mark_circle(size=60).encode(
            y="score:Q", color=alt.Color("status:N", scale=_STATUS_SCALE, title="status"),
            tooltip=tooltip),
        base.mark_line(strokeDash=[6, 4], color="#c62828").encode(y="threshold:Q"),
    ]
    if selected_ms is not None:
        marker = pd.DataFrame({"time": to_time([selected_ms])})
        layers.append(alt.Chart(marker).mark_rule(color="#1565c0", strokeWidth=2).encode(
            x="time:T"))
    return alt.layer(*layers).properties(height=HEIGHT)


def time_lines(df: pd.DataFrame, title: str, fmt: str = ".3g", marks_ms: Sequence[int] = (),
               levels: Sequence[float] = (), zero: bool = True) -> alt.LayerChart:
    """Columns: time, value, series. One line per series; ``marks_ms`` draws vertical rules
    (e.g. the start of a drift alert) so co-moving signals are visible at a glance, ``levels``
    horizontal dashed ones (thresholds); ``zero=False`` lets the axis zoom on the data."""
    lines = alt.Chart(df).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        _time_axis(), y=alt.Y("value:Q", title=title, axis=alt.Axis(format=fmt),
                              scale=alt.Scale(zero=zero)),
        color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom")),
        tooltip=["time:T", "series:N", alt.Tooltip("value:Q", format=fmt)])
    layers = [lines]
    if marks_ms:
        rules = pd.DataFrame({"time": to_time(list(marks_ms))})
        layers.append(alt.Chart(rules).mark_rule(color="#c62828", strokeDash=[2, 2]).encode(
            x="time:T"))
    if levels:
        layers.append(alt.Chart(pd.DataFrame({"y": list(levels)})).mark_rule(
            color="#c62828", strokeDash=[6, 4]).encode(y="y:Q"))
    return alt.layer(*layers).properties(height=HEIGHT)


def band_line(df: pd.DataFrame, title: str) -> alt.LayerChart:
    """Columns: time, value, lo, hi, series: a line with its interval band per series."""
    base = alt.Chart(df).encode(_time_axis(), color=alt.Color("series:N", title=None,
                                                               legend=alt.Legend(orient="bottom")))
    band = base.mark_area(opacity=0.15).encode(y=alt.Y("lo:Q", title=title, axis=alt.Axis(
        format="%"), scale=alt.Scale(zero=False)), y2="hi:Q")
    line = base.mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        y="value:Q", tooltip=["time:T", "series:N", alt.Tooltip("value:Q", format=".1%"),
                              alt.Tooltip("lo:Q", format=".1%"), alt.Tooltip("hi:Q", format=".1%")])
    return alt.layer(band, line).properties(height=HEIGHT)


def histogram_compare(bins: Sequence[str], reference: Sequence[float],
                      window: Sequence[float], title: str) -> alt.Chart:
    """Reference vs window shares per bin or category, side by side."""
    df = pd.DataFrame({"bin": list(bins) * 2, "share": list(reference) + list(window),
                       "source": ["reference"] * len(bins) + ["window"] * len(bins)})
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("bin:N", sort=list(bins), title=title, axis=alt.Axis(labelAngle=-40)),
        xOffset="source:N", y=alt.Y("share:Q", title="share", axis=alt.Axis(format="%")),
        color=alt.Color("source:N", scale=_SOURCE_SCALE, title=None),
        tooltip=["bin:N", "source:N", alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=HEIGHT)


def projection(reference: Sequence[Sequence[float]], window: Sequence[Sequence[float]]) -> alt.Chart:
    """2-D projection (first two principal axes of the reference) of reference vs window."""
    rows = [{"pc1": p[0], "pc2": p[1], "source": "reference"} for p in reference]
    rows += [{"pc1": p[0], "pc2": p[1], "source": "window"} for p in window]
    return alt.Chart(pd.DataFrame(rows)).mark_circle(size=22, opacity=0.55).encode(
        x=alt.X("pc1:Q", title="PC 1"), y=alt.Y("pc2:Q", title="PC 2"),
        color=alt.Color("source:N", scale=_SOURCE_SCALE, title=None),
    ).properties(height=300)


def heatmap(df: pd.DataFrame, x: str, y: str, fmt: str = ".1%") -> alt.LayerChart:
    """Columns: col, row, value, label, n. Cells coloured by value (low = red); ``x``/``y``
    are the axis titles."""
    base = alt.Chart(df).encode(x=alt.X("col:N", title=x, axis=alt.Axis(labelAngle=0)),
                                y=alt.Y("row:N", title=y, axis=alt.Axis(labelOverlap=False)))
    cells = base.mark_rect().encode(
        color=alt.Color("value:Q", title="accuracy", scale=alt.Scale(scheme="redyellowgreen"),
                        legend=alt.Legend(format="%")),
        tooltip=["col:N", "row:N", alt.Tooltip("value:Q", format=fmt), "n:Q"])
    return alt.layer(cells, base.mark_text(fontSize=13).encode(text="label:N")).properties(
        height=max(120, 56 * df["row"].nunique()))


def intervals(df: pd.DataFrame, overall: float | None) -> alt.LayerChart:
    """Columns: slice, value, lo, hi, n. A point with its interval per slice; a rule at the
    overall value."""
    order = df.sort_values("value")["slice"].tolist()
    base = alt.Chart(df).encode(y=alt.Y("slice:N", sort=order, title=None,
                                        axis=alt.Axis(labelOverlap=False, labelLimit=260)))
    layers = [base.mark_rule(color="#78909c", strokeWidth=2).encode(
        x=alt.X("lo:Q", title="accuracy (95 % CI)", axis=alt.Axis(format="%"),
                scale=alt.Scale(zero=False)), x2="hi:Q"),
              base.mark_circle(size=70, color="#1565c0").encode(
                  x="value:Q", tooltip=["slice:N", alt.Tooltip("value:Q", format=".1%"),
                                        alt.Tooltip("lo:Q", format=".1%"),
                                        alt.Tooltip("hi:Q", format=".1%"), "n:Q"])]
    if overall is not None:
        layers.append(alt.Chart(pd.DataFrame({"x": [overall]})).mark_rule(
            strokeDash=[4, 3], color="#c62828").encode(x="x:Q"))
    return alt.layer(*layers).properties(height=max(160, 22 * len(df)))


def timeline(df: pd.DataFrame) -> alt.Chart:
    """Columns: alert, start, end, state, severity: one bar per alert over event time."""
    return alt.Chart(df).mark_bar(height=14).encode(
        x=alt.X("start:T", title="event time (UTC)", axis=alt.Axis(format="%H:%M")), x2="end:T",
        y=alt.Y("alert:N", title=None, sort=None, axis=alt.Axis(labelLimit=360)),
        color=alt.Color("state:N", scale=alt.Scale(
            domain=["firing", "pending", "suppressed", "explained", "resolved"],
            range=["#c62828", "#f9a825", "#7e57c2", "#bcaaa4", "#90a4ae"]), title="state"),
        tooltip=["alert:N", "severity:N", "state:N", "start:T", "end:T"],
    ).properties(height=max(80, 22 * df["alert"].nunique()))


def bars(df: pd.DataFrame, x: str, y: str, color: str | None = None, fmt: str = ".0f") -> alt.Chart:
    """A simple bar chart of columns ``x`` (nominal) and ``y`` (quantitative)."""
    enc = {"x": alt.X(f"{x}:N", title=x, sort=None),
           "y": alt.Y(f"{y}:Q", title=y, axis=alt.Axis(format=fmt)),
           "tooltip": [f"{x}:N", alt.Tooltip(f"{y}:Q", format=fmt)]}
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=None)
        enc["xOffset"] = f"{color}:N"
    return alt.Chart(df).mark_bar().encode(**enc).properties(height=HEIGHT)
