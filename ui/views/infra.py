"""Infra signals beside latency on the On-call page: GPU memory and utilisation, cold-start rate
and errors by code, per window, from the ``infra`` detector's findings (``details["infra"]``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pandas as pd
import streamlit as st

from ui import charts, store
from ui.nav import Context
from ui.queries import findings as qf
from ui.views import common
from ui.views.common import num, pct


def render(ctx: Context, onsets: Sequence[int]) -> None:
    points = [p for p in store.get(qf.detail_series, "infra", ctx.model, (ctx.version,),
                                   ctx.slice, "", ("infra",), ctx.start_ms, ctx.end_ms)
              if p.status != "insufficient_data" and p.values.get("infra")]
    if not points:
        common.empty("No infra signals", "The `infra` detector has no evaluated window for this "
                     "version and slice (is it enabled, and do events carry `gpu_mem_mb`, "
                     "`gpu_util`, `cold_start`, `error_code`?).")
        return
    rows = [(p.window_start_ms, p.values["infra"]) for p in points]

    def frame(pick) -> pd.DataFrame:
        df = pd.DataFrame([{"time": t, "value": v, "series": s} for t, d in rows
                           for s, v in pick(d) if v is not None])
        if not df.empty:
            df["time"] = charts.to_time(df["time"])
        return df

    mem = frame(lambda d: [(q, (d.get("gpu_mem_mb") or {}).get(q)) for q in ("p50", "p95")])
    util = frame(lambda d: [(q, (d.get("gpu_util") or {}).get(q)) for q in ("p50", "p95")])
    cold = frame(lambda d: [("cold starts", d.get("cold_start_rate"))])
    errors = frame(lambda d: [(code, k / d["count"]) for code, k in
                              (d.get("errors_by_code") or {}).items() if d.get("count")])
    marks = list(onsets[:1])
    cols = st.columns(4)
    for col, title, df, fmt, empty in (
            (cols[0], "GPU memory (MB)", mem, ".0f", "No event reported `gpu_mem_mb`."),
            (cols[1], "GPU utilisation", util, ".0%", "No event reported `gpu_util`."),
            (cols[2], "Cold starts (share of events)", cold, ".2%", "No event reported "
             "`cold_start`."),
            (cols[3], "Errors by code (share of events)", errors, ".2%", "No errors.")):
        with col:
            st.markdown(f"**{title}**")
            if df.empty:
                st.caption(empty)
            else:
                st.altair_chart(charts.time_lines(df, title, fmt, marks, zero=False),
                                width="stretch")
    total: Counter[str] = Counter()
    for _, d in rows:
        total.update(d.get("errors_by_code") or {})
    newest = rows[-1][1]
    mem_new, util_new = newest.get("gpu_mem_mb") or {}, newest.get("gpu_util") or {}
    st.caption(f"Newest window: GPU memory p95 {num(mem_new.get('p95'), ',.0f')} MB, "
               f"utilisation p50 {pct(util_new.get('p50'), 0)}, cold starts "
               f"{pct(newest.get('cold_start_rate'), 2)}, out-of-memory errors "
               f"{newest.get('oom', 0)}. Errors in the range by code: "
               + (", ".join(f"`{c}` {n:,}" for c, n in total.most_common(6)) or "none") + ".")
