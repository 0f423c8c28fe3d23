"""Small pieces the pages share: number formatting, status badges, empty states, link tables."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pandas as pd
import streamlit as st

from ui import store
from ui.links import format_time, page_for_detector
from ui.nav import Context
from ui.queries.findings import FindingPoint
from ui.queries.labels import Counts
from ui.queries.ops import SloPoint, slo_series

#: How a finding status reads in tables (plain words: they survive copy-paste into tickets).
STATUS_ICON = {"ok": "ok", "warn": "warn", "alert": "ALERT",
               "insufficient_data": "insufficient data", "no_reference": "no reference"}


def pct(x: float | None, digits: int = 1) -> str:
    """``0.9123`` -> ``'91.2 %'``; a dash for no value.

    >>> pct(0.9123), pct(None), pct(float("nan"))
    ('91.2 %', '–', '–')
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x * 100:.{digits}f} %"


def num(x: float | None, fmt: str = ".3g") -> str:
    """A number in ``fmt``; a dash for no value.

    >>> num(0.000123), num(None), num(1234567, ",.0f")
    ('0.000123', '–', '1,234,567')
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return format(x, fmt)


def hhmm(ms: int) -> str:
    """``2026-11-01 01:05`` (UTC) for tables and captions."""
    return format_time(ms)[:16].replace("T", " ")


def empty(what: str, why: str) -> None:
    """An empty state that says what is missing and how to get it (never a blank chart)."""
    st.info(f"**{what}.** {why}")


def header(title: str, ctx: Context) -> None:
    st.title(title)
    where = f"`{ctx.model}` · version `{ctx.version}`"
    if ctx.slice != "all":
        where += f" · slice `{ctx.slice}`"
    st.caption(f"{where} · event time {hhmm(ctx.start_ms)} → {hhmm(ctx.end_ms)} UTC")


def total(counts: Iterable[Counts]) -> Counts:
    """Sum of several counts (the mean confidence weighted by events)."""
    items = list(counts)
    n = sum(c.n for c in items)
    conf_n = sum(c.n - c.errors for c in items if c.mean_confidence is not None)
    conf = (sum(c.mean_confidence * (c.n - c.errors) for c in items
                if c.mean_confidence is not None) / conf_n) if conf_n else None
    return Counts(n, sum(c.errors for c in items), sum(c.labelled for c in items),
                  sum(c.correct for c in items), conf)


def findings_frame(points: Sequence[FindingPoint], ctx: Context) -> pd.DataFrame:
    """A table of headline findings with a link to the page that explains each one."""
    rows = []
    for p in points:
        page = page_for_detector(p.detector)
        rows.append({
            "window": hhmm(p.window_start_ms), "detector": p.detector, "version": p.version,
            "slice": p.slice, "status": STATUS_ICON.get(p.status, p.status),
            "severity": p.severity, "score": p.score, "threshold": p.threshold,
            "p corrected": p.p_value, "n": p.n,
            "open": ctx.link(page=page, version=p.version, slice=p.slice, detector=p.detector,
                             window_ms=p.window_start_ms)})
    return pd.DataFrame(rows)


#: Which p-values are which (issue 12): every p-value the UI shows is labelled "p raw" or
#: "p corrected", and each table or figure with one says by what it was corrected. A drift
#: detector's p-value (detectors/_verdict.py) is corrected three times: inside its family of
#: tests (features, classes; the detector's ``correction``: Benjamini-Hochberg, Holm or
#: Bonferroni), Bonferroni over the configured slices, and alpha spending over the window's looks
#: (0.9 alpha at the first evaluation, 0.1 alpha / 2^k at re-evaluation k); it is compared with
#: alpha directly. Version comparisons, the fairness audit and worst-slice discovery correct
#: differently: their pages say how (VERSIONS_P_NOTE, FAIRNESS_P_NOTE, DISCOVERY_P_NOTE).
P_CORRECTED_HELP = ("corrected: inside the detector's family of tests (Benjamini–Hochberg, Holm "
                    "or Bonferroni over its features or classes), Bonferroni over the configured "
                    "slices, and alpha spending over the window's looks (0.9 α at the first "
                    "evaluation, 0.1 α / 2^k at re-evaluation k); compare with α directly")
P_RAW_HELP = "raw: this one test's p-value, before any multiple-testing correction"
P_NOTE = ("**p raw**: one test's own p-value, before any correction. **p corrected**: "
          "adjusted inside the detector's family of tests (Benjamini–Hochberg, Holm or "
          "Bonferroni over its features or classes), Bonferroni over the configured slices, and "
          "alpha spending over the window's looks (0.9 α at the first evaluation, 0.1 α / 2^k "
          "at re-evaluation k); compared with α directly. Exceptions: a version comparison's "
          "(`version_health`) is Holm over its metrics only, compared with α spent on the look "
          "÷ slices; a fairness finding's is Bonferroni over its comparisons and the slices.")
VERSIONS_P_NOTE = ("**p raw**: one metric's own test (Fisher's exact test for error rate and "
                   "accuracy). **p corrected**: Holm over this comparison's metrics; it is "
                   "compared with the α this look may spend (alpha spending over looks) divided "
                   "by the configured slices (Bonferroni)")
FAIRNESS_P_NOTE = ("**p corrected**: Bonferroni over the audit's comparisons (groups × "
                   "metrics) and the configured slices; compared with α directly.")
DISCOVERY_P_NOTE = ("**p corrected**: Benjamini–Hochberg over every attribute combination the "
                    "discovery tested.")
LINK_COLUMN = st.column_config.LinkColumn("open", display_text="open", width="small")
NUMBER_COLUMNS = {"score": st.column_config.NumberColumn(format="%.4g"),
                  "threshold": st.column_config.NumberColumn(format="%.4g"),
                  "p corrected": st.column_config.NumberColumn(
                      format="%.2e", help=P_CORRECTED_HELP),
                  "p raw": st.column_config.NumberColumn(format="%.2e", help=P_RAW_HELP)}


def table(df: pd.DataFrame, p_note: str = P_NOTE, **columns: object) -> None:
    """``st.dataframe`` with the shared column formats, no index, full width; a table with
    p-values is followed by ``p_note``, saying which are raw and how the others are corrected."""
    config = {"open": LINK_COLUMN, **NUMBER_COLUMNS, **columns}
    st.dataframe(df, hide_index=True, width="stretch",
                 column_config={k: v for k, v in config.items() if k in df.columns})
    if {"p raw", "p corrected"} & set(df.columns):
        st.caption(p_note)


def findings_in_alert(ctx: Context, incidents: Sequence[FindingPoint], limit: int, note: str) -> None:
    """Without the alert engine's tables: ``note``, then the newest detector findings in alert."""
    st.caption(note)
    if incidents:
        table(findings_frame(incidents[:limit], ctx))
    else:
        empty("Nothing in alert", "No detector finding is in alert in this range.")


def slo_points(ctx: Context, no_tables: str, none_title: str,
               none_why: str) -> tuple[SloPoint, ...] | None:
    """The SLO burn-rate points of the view; None, after an empty state saying why, if none."""
    if "slo_buckets" not in ctx.tables:
        empty("No SLO tables", no_tables)
        return None
    points = store.get(slo_series, ctx.model, ctx.start_ms, ctx.end_ms)
    if not points:
        empty(none_title, none_why)
        return None
    return points
