"""The sidebar: turns the URL's query parameters into a :class:`Context` every page renders from,
and writes the user's choices back into the URL, so what is on screen is always a shareable link.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import streamlit as st

from monitor.app.config import Settings
from ui import store
from ui.links import ALL_SLICE, PAGES, RANGES, View, format_time
from ui.queries import findings as qf

RANGE_LABELS = {"1h": "Last hour", "6h": "Last 6 hours", "24h": "Last 24 hours",
                "7d": "Last 7 days", "all": "Everything stored"}
LINK_RANGE = "link"


@dataclass(frozen=True, slots=True)
class Context:
    """What every page needs: the view, the resolved model/version/range and what exists."""

    view: View
    settings: Settings
    model: str
    versions: tuple[str, ...]  # of the model, most traffic first
    version: str
    start_ms: int
    end_ms: int
    tables: frozenset[str]

    @property
    def slice(self) -> str:
        return self.view.slice

    def link(self, **changes: object) -> str:
        """A relative link to this view with some parameters changed (for tables and buttons)."""
        view = self.view.with_(**{"model": self.model, "version": self.version, **changes})
        return "?" + urlencode(view.to_params())

    def span_text(self) -> str:
        return f"{format_time(self.start_ms)} → {format_time(self.end_ms)}"


def _choose(label: str, options: list[str], current: str | None, **kw: object) -> str:
    index = options.index(current) if current in options else 0
    return st.sidebar.selectbox(label, options, index=index, **kw)


def sidebar(view: View) -> Context | None:
    """Render the navigation; None when there is no data yet (an empty state was shown)."""
    titles = list(PAGES.values())
    title = st.sidebar.radio("Page", titles, index=list(PAGES).index(view.page))
    view = view.with_(page=list(PAGES)[titles.index(title)])
    versions_all = store.get(qf.model_versions)
    extent = store.get(qf.extent)
    if not versions_all or extent.last_ms is None:
        _publish(view)
        st.title(PAGES[view.page])
        st.info("**No data yet.** The monitor has not evaluated any window. Check that `vitmon run` "
                "is running and that model servers (or `vitmon simulate`) publish to Kafka; "
                "windows appear once event time passes their end. This page refreshes on reload.")
        return None
    models = sorted({mv.model for mv in versions_all})
    model = _choose("Model", models, view.model)
    versions = tuple(mv.version for mv in versions_all if mv.model == model)
    version = _choose("Version", list(versions), view.version,
                      help="Versions by traffic; canaries are versions too.")
    view = _range_widget(view)
    start_ms, end_ms = view.bounds(extent.last_ms, extent.first_ms or extent.last_ms)
    slices = sorted({s for _, v, s in store.get(qf.keys_in_range, model, start_ms, end_ms)
                     if v == version} | {ALL_SLICE, view.slice},
                    key=lambda s: (s != ALL_SLICE, s))
    chosen_slice = _choose("Slice", slices, view.slice,
                           help="`all`, one attribute (`camera_id=cam-03`) or a cross.")
    view = view.with_(model=model, version=version, slice=chosen_slice)
    _publish(view)
    st.sidebar.caption(f"Event time {format_time(start_ms)} → {format_time(end_ms)}")
    return Context(view, store.settings(), model, versions, version, start_ms, end_ms,
                   store.tables())


def _range_widget(view: View) -> View:
    options = list(RANGES)
    labels = dict(RANGE_LABELS)
    current = view.range
    if view.start_ms is not None and view.end_ms is not None:
        options.insert(0, LINK_RANGE)
        labels[LINK_RANGE] = "From the link: " + format_time(view.start_ms)[11:16] + "–" \
            + format_time(view.end_ms)[11:16]
        current = LINK_RANGE
    choice = st.sidebar.selectbox("Time range", options, index=options.index(current),
                                  format_func=labels.__getitem__,
                                  help="Event time, ending at the newest evaluated window.")
    if choice == LINK_RANGE:
        return view
    return view.with_(range=choice, start_ms=None, end_ms=None)


def _publish(view: View) -> None:
    """Mirror the view into the address bar (only when it changed: no needless history)."""
    params = view.to_params()
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
