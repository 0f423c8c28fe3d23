"""The Streamlit side of the read model: settings, one engine per process, cached queries.

Pages call ``store.get(queries.findings.finding_series, ...)``: the query runs on a pooled
connection and its frozen-dataclass result is cached for :data:`TTL_S` seconds per arguments
(and per database), so a page re-run or a second on-call engineer costs no database work.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import streamlit as st
from sqlalchemy import Engine

from monitor.app.config import Settings, load_settings
from monitor.store.db import make_engine
from ui import thumbnails
from ui.queries import findings

T = TypeVar("T")
TTL_S = 15  # the monitor checkpoints every few seconds; 15 s keeps pages fresh and cheap
TABLES_TTL_S = 60  # new tables appear only with a migration


class NotConfigured(Exception):
    """The UI has no database URL; the message says what to set."""


@st.cache_resource(show_spinner=False)
def settings() -> Settings:
    """Settings from ``VITMON_CONFIG`` and ``VITMON_*`` (as every vitmon command reads them)."""
    return load_settings(None)


@st.cache_resource(show_spinner=False)
def _engine(url: str) -> Engine:
    return make_engine(url)


def configured_url() -> str:
    url = settings().database_url()
    if not url:
        raise NotConfigured("No database configured: set VITMON_DATABASE_URL (or database.url in "
                            "the file named by VITMON_CONFIG) and restart `vitmon ui`.")
    return url


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=2048)
def _cached(url: str, module: str, name: str, args: tuple) -> object:
    fn = getattr(importlib.import_module(module), name)
    with _engine(url).connect() as conn:
        return fn(conn, *args)


def get(fn: Callable[..., T], *args: object) -> T:
    """``fn(connection, *args)`` from a query module, cached. Arguments must be hashable."""
    return _cached(configured_url(), fn.__module__, fn.__name__, args)  # type: ignore[return-value]


@st.cache_data(ttl=TABLES_TTL_S, show_spinner=False)
def _tables(url: str) -> frozenset[str]:
    with _engine(url).connect() as conn:
        return findings.existing_tables(conn)


def tables() -> frozenset[str]:
    """Tables present in the database (checked once a minute)."""
    return _tables(configured_url())


@st.cache_data(ttl=3600, max_entries=512, show_spinner=False)
def _thumbnail(uri: str, allow: tuple[str, ...], max_bytes: int, timeout_s: float,
               size_px: int, bucket: int) -> thumbnails.Thumb:
    return thumbnails.thumbnail(uri, allow, max_bytes, timeout_s, size_px)


def thumbnails_of(uris: tuple[str, ...]) -> list[thumbnails.Thumb]:
    """Thumbnails of ``uris`` (``ui.samples``), kept in memory for ``cache_s`` seconds: the
    time bucket is part of the cache key. Fetched in parallel, each bounded in time and size."""
    s = settings().ui.samples
    bucket = int(time.time() // s.cache_s) if s.cache_s else time.time_ns()
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda u: _thumbnail(u, s.allow, s.max_bytes, s.timeout_s,
                                                  s.size_px, bucket), uris))
