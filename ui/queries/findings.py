"""Detector findings (headline, drill-down, worst-slice discoveries) and traffic figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

MAX_ROWS = 5000  # safety cap for per-window series (a week of 5-minute windows is 2016)


@dataclass(frozen=True, slots=True)
class Extent:
    """Event-time span of the evaluated windows (None when nothing was evaluated yet)."""

    first_ms: int | None
    last_ms: int | None


@dataclass(frozen=True, slots=True)
class FindingPoint:
    """The headline finding (subject ``""``) of one detector, key and window."""

    detector: str
    model: str
    version: str
    slice: str
    window_start_ms: int
    window_end_ms: int
    status: str
    severity: str
    score: float | None
    threshold: float | None
    p_value: float | None
    n: int
    test: str


@dataclass(frozen=True, slots=True)
class SubFinding:
    subject: str
    status: str
    score: float | None
    threshold: float | None
    p_value: float | None
    n: int
    test: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FindingDetail:
    point: FindingPoint
    details: Mapping[str, Any]
    subs: tuple[SubFinding, ...]
    revision: int


@dataclass(frozen=True, slots=True)
class TrafficPoint:
    """Counts and latency quantiles of one window (from the ``traffic`` detector)."""

    window_start_ms: int
    version: str
    n: int
    errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


_POINT_COLS = ("detector, model, model_version, slice, window_start_ms, window_end_ms, status, "
               "severity, score, threshold, p_value, n, test")


def _point(r: Any) -> FindingPoint:
    return FindingPoint(r.detector, r.model, r.model_version, r.slice, r.window_start_ms,
                        r.window_end_ms, r.status, r.severity, r.score, r.threshold, r.p_value,
                        int(r.n), r.test)


def existing_tables(conn: Connection) -> frozenset[str]:
    """Tables in the current schema: pages for features whose tables are not migrated yet
    (alerts, SLOs) show an empty state instead of an error."""
    rows = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
    return frozenset(r[0] for r in rows)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    model: str
    version: str
    accepted: int


def model_versions(conn: Connection) -> tuple[ModelVersion, ...]:
    rows = conn.execute(text("SELECT model, model_version, accepted FROM ingest_counts "
                             "ORDER BY model, accepted DESC, model_version"))
    return tuple(ModelVersion(r.model, r.model_version, int(r.accepted)) for r in rows)


def extent(conn: Connection) -> Extent:
    """First window start and last window end of the findings (index range scans only).

    The last end is looked for among windows starting in the last week before the newest
    start: windows are shorter than that, and minute-long SLO findings can start after the
    newest 10-minute window yet end before it."""
    r = conn.execute(text(
        "SELECT (SELECT min(window_start_ms) FROM findings) AS lo, "
        "(SELECT max(window_start_ms) FROM findings) AS hi_start")).one()
    if r.hi_start is None:
        return Extent(None, None)
    end = conn.execute(text("SELECT max(window_end_ms) FROM findings WHERE window_start_ms >= :s"),
                       {"s": r.hi_start - 7 * 86_400_000}).scalar_one()
    return Extent(int(r.lo), int(end))


def keys_in_range(conn: Connection, model: str, start_ms: int,
                  end_ms: int) -> tuple[tuple[str, str, str], ...]:
    """Distinct (detector, version, slice) with findings for ``model`` in the range."""
    rows = conn.execute(text(
        "SELECT DISTINCT detector, model_version, slice FROM findings "
        "WHERE window_start_ms >= :a AND window_start_ms < :b AND model = :m AND subject = '' "
        "ORDER BY 1, 2, 3"), {"m": model, "a": start_ms, "b": end_ms})
    return tuple((r.detector, r.model_version, r.slice) for r in rows)


def finding_series(conn: Connection, detector: str, model: str, version: str, slice_: str,
                   start_ms: int, end_ms: int) -> tuple[FindingPoint, ...]:
    """Headline findings of one detector and key over time (``uq_findings_key`` prefix)."""
    rows = conn.execute(text(
        f"SELECT {_POINT_COLS} FROM findings WHERE detector = :d AND model = :m "
        "AND model_version = :v AND slice = :s AND window_start_ms >= :a AND window_start_ms < :b "
        "AND subject = '' ORDER BY window_start_ms LIMIT :lim"),
        {"d": detector, "m": model, "v": version, "s": slice_, "a": start_ms, "b": end_ms,
         "lim": MAX_ROWS})
    return tuple(_point(r) for r in rows)


def finding_detail(conn: Connection, detector: str, model: str, version: str, slice_: str,
                   window_start_ms: int) -> FindingDetail | None:
    """One window's headline finding with its details and every sub-finding (feature, test)."""
    rows = conn.execute(text(
        f"SELECT {_POINT_COLS}, subject, details, revision FROM findings WHERE detector = :d "
        "AND model = :m AND model_version = :v AND slice = :s AND window_start_ms = :w "
        "ORDER BY subject"), {"d": detector, "m": model, "v": version, "s": slice_,
                              "w": window_start_ms}).all()
    head = next((r for r in rows if r.subject == ""), None)
    if head is None:
        return None
    subs = tuple(SubFinding(r.subject, r.status, r.score, r.threshold, r.p_value, int(r.n),
                            r.test, r.details or {}) for r in rows if r.subject)
    return FindingDetail(_point(head), head.details or {}, subs, int(head.revision))


def incidents(conn: Connection, start_ms: int, end_ms: int, model: str | None = None,
              limit: int = 500) -> tuple[FindingPoint, ...]:
    """Headline findings in ``alert`` status in the range, newest first (``ix_findings_status``)."""
    rows = conn.execute(text(
        f"SELECT {_POINT_COLS} FROM findings WHERE status = 'alert' AND window_start_ms >= :a "
        "AND window_start_ms < :b AND subject = '' "
        "AND (CAST(:m AS text) IS NULL OR model = :m) "
        "ORDER BY window_start_ms DESC, detector, slice LIMIT :lim"),
        {"a": start_ms, "b": end_ms, "m": model, "lim": limit})
    return tuple(_point(r) for r in rows)


def traffic_series(conn: Connection, model: str, versions: Sequence[str], slice_: str,
                   start_ms: int, end_ms: int) -> tuple[TrafficPoint, ...]:
    """Per-window counts, error rate and latency quantiles from the ``traffic`` detector."""
    rows = conn.execute(text(
        "SELECT model_version, window_start_ms, n, details FROM findings WHERE detector = "
        "'traffic' AND model = :m AND model_version = ANY(:vs) AND slice = :s "
        "AND window_start_ms >= :a AND window_start_ms < :b AND subject = '' "
        "AND status <> 'insufficient_data' ORDER BY window_start_ms, model_version LIMIT :lim"),
        {"m": model, "vs": list(versions), "s": slice_, "a": start_ms, "b": end_ms,
         "lim": MAX_ROWS})
    out = []
    for r in rows:
        d = r.details or {}
        out.append(TrafficPoint(r.window_start_ms, r.model_version, int(d.get("count", r.n)),
                                int(d.get("errors", 0)), float(d.get("error_rate", 0.0)),
                                d.get("p50_ms"), d.get("p95_ms"), d.get("p99_ms")))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class DetailPoint:
    """Selected ``details`` fields of one detector's findings for one window and version."""

    window_start_ms: int
    version: str
    status: str
    values: Mapping[str, Any]


def detail_series(conn: Connection, detector: str, model: str, versions: Sequence[str],
                  slice_: str, subject: str, keys: Sequence[str], start_ms: int,
                  end_ms: int) -> tuple[DetailPoint, ...]:
    """``details[k]`` for each of ``keys`` per window (only those fields leave the database)."""
    rows = conn.execute(text(
        "SELECT window_start_ms, model_version, status, "
        "(SELECT jsonb_object_agg(k, details -> k) FROM unnest(CAST(:keys AS text[])) AS k) AS vals "
        "FROM findings WHERE detector = :d AND model = :m AND model_version = ANY(:vs) "
        "AND slice = :s AND window_start_ms >= :a AND window_start_ms < :b AND subject = :sub "
        "ORDER BY window_start_ms, model_version LIMIT :lim"),
        {"d": detector, "m": model, "vs": list(versions), "s": slice_, "sub": subject,
         "keys": list(keys), "a": start_ms, "b": end_ms, "lim": MAX_ROWS})
    return tuple(DetailPoint(r.window_start_ms, r.model_version, r.status, r.vals or {})
                 for r in rows)


def latest_findings(conn: Connection, detector: str, model: str, start_ms: int,
                    end_ms: int) -> tuple[FindingDetail, ...]:
    """The newest window's findings of ``detector`` per (version, slice) in the range, with
    details and sub-findings (e.g. fairness per group, version health per version)."""
    heads = conn.execute(text(
        "SELECT DISTINCT ON (model_version, slice) model_version, slice, window_start_ms "
        "FROM findings WHERE detector = :d AND model = :m AND window_start_ms >= :a "
        "AND window_start_ms < :b AND subject = '' AND status <> 'insufficient_data' "
        "ORDER BY model_version, slice, window_start_ms DESC"),
        {"d": detector, "m": model, "a": start_ms, "b": end_ms}).all()
    out = [finding_detail(conn, detector, model, h.model_version, h.slice, h.window_start_ms)
           for h in heads]
    return tuple(d for d in out if d is not None)


@dataclass(frozen=True, slots=True)
class Discovery:
    """One slice found by worst-slice discovery (``vitmon slices discover``) over a range."""

    slice: str
    rank: int
    n: int
    error_rate: float
    overall_error_rate: float
    error_rate_ci: tuple[float, float]
    p_adjusted: float | None
    from_ms: int
    to_ms: int


def discoveries(conn: Connection, model: str, version: str, start_ms: int, end_ms: int,
                limit: int = 50) -> tuple[Discovery, ...]:
    """The newest discovery run whose range starts in ``[start, end)``, best-ranked first."""
    rows = conn.execute(text(
        "SELECT subject, window_start_ms, window_end_ms, n, p_value, details FROM findings "
        "WHERE detector = 'worst_slice' AND model = :m AND model_version = :v AND slice = 'all' "
        "AND window_start_ms = (SELECT max(window_start_ms) FROM findings WHERE detector = "
        "'worst_slice' AND model = :m AND model_version = :v AND slice = 'all' "
        "AND window_start_ms >= :a AND window_start_ms < :b) "
        "ORDER BY (details->>'rank')::int LIMIT :lim"),
        {"m": model, "v": version, "a": start_ms, "b": end_ms, "lim": limit})
    return tuple(_discovery(r.subject, r.n, r.p_value, r.window_start_ms, r.window_end_ms,
                            r.details or {}) for r in rows)


def _discovery(subject: str, n: int, p_adjusted: float | None, from_ms: int, to_ms: int,
               details: Mapping[str, Any]) -> Discovery:
    ci = details.get("error_rate_ci") or (None, None)
    return Discovery(subject, int(details.get("rank", 0)), int(n),
                     float(details.get("error_rate", "nan")),
                     float(details.get("overall_error_rate", "nan")), (ci[0], ci[1]),
                     p_adjusted, from_ms, to_ms)
