"""vitmon's Streamlit UI: ``vitmon ui`` runs ``streamlit run ui/app.py``.

Every view is addressed by query parameters (see :mod:`ui.links`), so an alert's
``dashboard_url`` opens exactly the page, model, version, slice, detector and time range it is
about. Pages read PostgreSQL only, through :mod:`ui.queries` (cached in :mod:`ui.store`).
"""

from __future__ import annotations

import streamlit as st

from monitor.errors import ConfigError
from ui import login, nav, store
from ui.links import PAGES, View
from ui.views import drift, fairness, oncall, overview, slices, versions

RENDER = {"overview": overview.render, "oncall": oncall.render, "drift": drift.render,
          "slices": slices.render, "fairness": fairness.render, "versions": versions.render}
assert set(RENDER) == set(PAGES), "every page in ui.links.PAGES needs a renderer"


def main() -> None:
    st.set_page_config(page_title="vitmon", layout="wide")
    try:
        settings = store.settings()
        store.configured_url()
    except (ConfigError, store.NotConfigured) as exc:
        st.error(f"vitmon UI cannot start: {exc}")
        st.stop()
    login.require(settings.ui)
    st.sidebar.markdown("## vitmon")
    view = View.from_params(st.query_params.to_dict())
    ctx = nav.sidebar(view)
    if ctx is not None:
        RENDER[ctx.view.page](ctx)


if __name__ == "__main__":  # how `streamlit run` and AppTest execute it; importing has no effect
    main()
