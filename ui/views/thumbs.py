"""Example inputs as pictures: the reference's beside the window's, from the ``examples``
detector's per-window sample (pointers) and thumbnails the UI server fetches (:mod:`ui.store`,
:mod:`ui.thumbnails`; never stored in vitmon's database)."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from ui import store
from ui.nav import Context
from ui.queries import samples as qs
from ui.views import common
from ui.views.common import hhmm, pct

PER_SIDE = 8


def compare(ctx: Context, window_start_ms: int, window_end_ms: int) -> None:
    """Reference inputs (from the active reference's capture range, same slice) beside the
    inputs of one window."""
    if "window_states" not in ctx.tables:
        return
    size_ms = ctx.settings.windows.size_s * 1000
    baseline = ctx.settings.models.get(ctx.model)
    ref = store.get(qs.reference_range, ctx.model, ctx.version,
                    baseline.baseline_version if baseline else None)
    window = store.get(qs.examples, ctx.model, ctx.version, ctx.slice, window_start_ms,
                       window_end_ms, window_start_ms, window_end_ms, PER_SIDE)
    left, right = st.columns(2)
    with left:
        if ref is None:
            st.markdown("**Reference inputs**")
            common.empty("No reference range", "The active reference was not captured from a "
                         "time range (`vitmon reference capture --from T --to T`), so there are "
                         "no reference inputs to show.")
        else:
            st.markdown(f"**Reference inputs** · {ref.version} · captured "
                        f"{hhmm(ref.from_ms)} – {hhmm(ref.to_ms)[11:]}")
            _grid(store.get(qs.examples, ctx.model, ref.version, ctx.slice,
                            ref.from_ms - size_ms + 1, ref.to_ms, ref.from_ms, ref.to_ms,
                            PER_SIDE))
    with right:
        st.markdown(f"**Window inputs** · {ctx.version} · {hhmm(window_start_ms)} – "
                    f"{hhmm(window_end_ms)[11:]}")
        _grid(window)


def _grid(examples: Sequence[qs.Example]) -> None:
    if not examples:
        common.empty("No example inputs", "No event of this slice carried a `sample_uri` here "
                     "(or the `examples` detector is not enabled).")
        return
    thumbs = store.thumbnails_of(tuple(e.uri for e in examples))
    shown = [(t, e) for t, e in zip(thumbs, examples, strict=True) if t.png is not None]
    if shown:
        st.image([t.png for t, _ in shown], caption=[
            f"pred {e.pred} · {pct(e.confidence)}" for _, e in shown])
    missing = [(t, e) for t, e in zip(thumbs, examples, strict=True) if t.png is None]
    if missing:
        st.caption(f"{len(missing)} input(s) not shown ({missing[0][0].reason}): "
                   + ", ".join(f"`{e.uri}`" for _, e in missing[:3]))
