"""What the UI is looking at, as URL query parameters: every view has an address.

An alert's ``dashboard_url`` is built with :func:`dashboard_url`, and the UI parses the same
parameters back with :meth:`View.from_params`, so the link opens exactly the page, model, version,
slice, detector, time range and window of the alert. Pure: no Streamlit, no database.

Parameters: ``page`` (one of :data:`PAGES`), ``model``, ``version``, ``slice``, ``detector``,
``from`` and ``to`` (RFC 3339 or epoch milliseconds, event time), ``range`` (a span ending at the
newest data, one of :data:`RANGES`, used when ``from``/``to`` are absent: the view follows new
data), ``window`` (start of one window, RFC 3339 or epoch milliseconds), ``incident`` (the
incident an alert belongs to: the On-call page opens it).

>>> url = dashboard_url("http://ui:8501", page="drift", model="vit-b16", version="2026.11.3",
...                     slice="camera_id=cam-03", detector="feature_drift",
...                     start_ms=1793491200000, end_ms=1793512800000, window_ms=1793494800000)
>>> url
'http://ui:8501/?page=drift&model=vit-b16&version=2026.11.3&slice=camera_id%3Dcam-03&detector=feature_drift&from=2026-11-01T00%3A00%3A00Z&to=2026-11-01T06%3A00%3A00Z&window=2026-11-01T01%3A00%3A00Z'
>>> from urllib.parse import parse_qsl, urlsplit
>>> v = View.from_params(dict(parse_qsl(urlsplit(url).query)))
>>> v.page, v.slice, v.window_ms == 1793494800000
('drift', 'camera_id=cam-03', True)
>>> View.from_params({"page": "nonsense", "from": "yesterday"}).page
'overview'
>>> View.from_params({"page": "slo", "version": "*"}).page
'oncall'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from urllib.parse import urlencode

from monitor.core.ingest.timestamps import parse_time

#: Page name in the URL -> title in the navigation, in navigation order.
PAGES: dict[str, str] = {
    "overview": "Overview",
    "oncall": "On-call",
    "drift": "Drift",
    "slices": "Slices",
    "fairness": "Fairness",
    "versions": "Versions",
}
#: Other page names found in links (the alert engine's and Prometheus rules' dashboard URLs).
PAGE_ALIASES = {"slo": "oncall", "alerts": "oncall", "performance": "slices",
                "findings": "drift", "version": "versions"}
DEFAULT_PAGE = "overview"
ALL_SLICE = "all"
#: ``range`` values -> span in milliseconds (None: everything stored).
RANGES: dict[str, int | None] = {"1h": 3_600_000, "6h": 21_600_000, "24h": 86_400_000,
                                 "7d": 604_800_000, "all": None}
DEFAULT_RANGE = "6h"


def format_time(ms: int) -> str:
    """RFC 3339 in UTC, seconds precision (milliseconds only when present).

    >>> format_time(1793491200000), format_time(1793491200250)
    ('2026-11-01T00:00:00Z', '2026-11-01T00:00:00.250Z')
    """
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}Z" if ms % 1000 else f"{text}Z"


@dataclass(frozen=True, slots=True)
class View:
    """One addressable view. None means "not chosen": the page picks a sensible default."""

    page: str = DEFAULT_PAGE
    model: str | None = None
    version: str | None = None
    slice: str = ALL_SLICE
    detector: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    window_ms: int | None = None
    range: str = DEFAULT_RANGE
    incident: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str | list[str]]) -> View:
        """Parse query parameters (single values or lists, as frameworks give them)."""
        def one(name: str) -> str | None:
            value = params.get(name)
            if isinstance(value, list):
                value = value[-1] if value else None
            return value.strip() or None if isinstance(value, str) else None

        page = (one("page") or DEFAULT_PAGE).lower()
        page = PAGE_ALIASES.get(page, page)
        span = (one("range") or DEFAULT_RANGE).lower()
        return cls(page=page if page in PAGES else DEFAULT_PAGE, model=one("model"),
                   version=one("version") or one("model_version"),
                   slice=one("slice") or ALL_SLICE, detector=one("detector"),
                   start_ms=parse_time(one("from")), end_ms=parse_time(one("to")),
                   window_ms=parse_time(one("window")),
                   range=span if span in RANGES else DEFAULT_RANGE, incident=one("incident"))

    def to_params(self) -> dict[str, str]:
        """Query parameters, without the defaults (short, stable links)."""
        out: dict[str, str] = {"page": self.page}
        for key, value in (("model", self.model), ("version", self.version),
                           ("slice", None if self.slice == ALL_SLICE else self.slice),
                           ("detector", self.detector), ("incident", self.incident)):
            if value:
                out[key] = value
        for key, ms in (("from", self.start_ms), ("to", self.end_ms), ("window", self.window_ms)):
            if ms is not None:
                out[key] = format_time(ms)
        if self.range != DEFAULT_RANGE and (self.start_ms is None or self.end_ms is None):
            out["range"] = self.range
        return out

    def bounds(self, newest_ms: int, oldest_ms: int) -> tuple[int, int]:
        """The event-time range ``[start, end)`` to show, given the stored data's span.

        >>> View(range="1h").bounds(newest_ms=10 * 3_600_000, oldest_ms=0)
        (32400000, 36000000)
        >>> View(start_ms=5, end_ms=9).bounds(newest_ms=100, oldest_ms=0)
        (5, 9)
        """
        end = self.end_ms if self.end_ms is not None else newest_ms
        if self.start_ms is not None:
            return self.start_ms, max(end, self.start_ms + 1)
        span = RANGES[self.range]
        return (oldest_ms if span is None else end - span), end

    def with_(self, **changes: object) -> View:
        """A copy with some fields changed (``dataclasses.replace`` under a short name)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"unknown view fields: {sorted(unknown)}")
        return replace(self, **changes)  # type: ignore[arg-type]


def dashboard_url(base_url: str, *, page: str = DEFAULT_PAGE, model: str | None = None,
                  version: str | None = None, slice: str = ALL_SLICE,
                  detector: str | None = None, start_ms: int | None = None,
                  end_ms: int | None = None, window_ms: int | None = None,
                  incident: str | int | None = None) -> str:
    """The UI address of one view (used for alerts' ``dashboard_url`` annotation)."""
    if page not in PAGES:
        raise ValueError(f"unknown UI page {page!r}; one of {', '.join(PAGES)}")
    view = View(page, model, version, slice or ALL_SLICE, detector, start_ms, end_ms, window_ms,
                incident=None if incident is None else str(incident))
    return f"{base_url.rstrip('/')}/?{urlencode(view.to_params())}"


def page_for_detector(detector: str | None) -> str:
    """The page that explains a detector's findings (for links from alerts and tables).

    >>> page_for_detector("embedding_drift"), page_for_detector("fairness"), page_for_detector(None)
    ('drift', 'fairness', 'oncall')
    """
    name = (detector or "").lower()
    for needle, page in (("fair", "fairness"), ("version", "versions"), ("slo", "oncall"),
                         ("burn", "oncall"), ("traffic", "oncall"), ("quality", "oncall"),
                         ("perf", "slices"), ("slice", "slices"), ("drift", "drift")):
        if needle in name:
            return page
    return "drift" if name else "oncall"
