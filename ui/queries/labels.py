"""Label-based and per-version figures, computed from ``predictions`` joined with ``labels``.

Every query is bounded by ``ix_predictions_model_ts`` (model, version, event time) and joins
labels by primary-key lookups (``LATERAL``), so its cost grows with the chosen range, not with
the tables. Intervals are Wilson score intervals (:func:`wilson`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

_LABEL = ("LEFT JOIN LATERAL (SELECT label FROM labels WHERE labels.event_id = p.event_id) l "
          "ON true")
_RANGE = "p.model = :m AND p.ts_ms >= :a AND p.ts_ms < :b"
_COUNTS = ("count(*) AS n, count(*) FILTER (WHERE p.is_error) AS errors, "
           "count(l.label) FILTER (WHERE NOT p.is_error) AS labelled, "
           "count(*) FILTER (WHERE l.label = p.pred AND NOT p.is_error) AS correct, "
           "avg(p.confidence) AS mean_confidence")


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default); (nan, nan) without data.

    >>> [round(x, 4) for x in wilson(90, 100)]
    [0.8256, 0.9448]
    """
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Counts:
    """Predictions, errors, labelled and correct predictions of one group of events."""

    n: int
    errors: int
    labelled: int
    correct: int
    mean_confidence: float | None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.correct, self.labelled)

    @property
    def coverage(self) -> float | None:
        """Share of successful predictions that have a label."""
        ok = self.n - self.errors
        return self.labelled / ok if ok else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.n if self.n else None


def _counts(r) -> Counts:  # noqa: ANN001 - a result row
    return Counts(int(r.n), int(r.errors), int(r.labelled), int(r.correct),
                  None if r.mean_confidence is None else float(r.mean_confidence))


@dataclass(frozen=True, slots=True)
class GroupCounts:
    """Counts of one slice, or of one cell of a two-attribute heat map."""

    key: str
    second: str | None
    counts: Counts


@dataclass(frozen=True, slots=True)
class VersionSummary:
    version: str
    counts: Counts
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    first_ms: int
    last_ms: int


@dataclass(frozen=True, slots=True)
class WindowCounts:
    window_start_ms: int
    version: str
    counts: Counts


def accuracy_series(conn: Connection, model: str, versions: Sequence[str], start_ms: int,
                    end_ms: int) -> tuple[WindowCounts, ...]:
    """Per window and version: counts, realised accuracy and mean confidence."""
    rows = conn.execute(text(
        f"SELECT p.window_start_ms, p.model_version, {_COUNTS} FROM predictions p {_LABEL} "
        f"WHERE {_RANGE} AND p.model_version = ANY(:vs) GROUP BY 1, 2 ORDER BY 1, 2"),
        {"m": model, "vs": list(versions), "a": start_ms, "b": end_ms})
    return tuple(WindowCounts(r.window_start_ms, r.model_version, _counts(r)) for r in rows)


def slice_window_accuracy(conn: Connection, model: str, version: str, slice_: str,
                          start_ms: int, end_ms: int) -> tuple[WindowCounts, ...]:
    """Per window: counts and accuracy of one version and slice."""
    rows = conn.execute(text(
        f"SELECT p.window_start_ms, p.model_version, {_COUNTS} FROM predictions p {_LABEL} "
        f"WHERE {_RANGE} AND p.model_version = :v AND (:s = 'all' OR "
        "p.slice_ids @> ARRAY[(SELECT t.id FROM prediction_terms t WHERE t.term = :s)]) "
        "GROUP BY 1, 2 ORDER BY 1"),
        {"m": model, "v": version, "s": slice_, "a": start_ms, "b": end_ms})
    return tuple(WindowCounts(r.window_start_ms, r.model_version, _counts(r)) for r in rows)


def slice_counts(conn: Connection, model: str, version: str, start_ms: int,
                 end_ms: int) -> tuple[GroupCounts, ...]:
    """Per slice (every slice an event was assigned to, ``all`` included)."""
    rows = conn.execute(text(
        f"SELECT s.slice AS key, {_COUNTS} FROM predictions p {_LABEL} "
        "CROSS JOIN LATERAL unnest(prediction_slices(p.slice_ids)) AS s(slice) "
        f"WHERE {_RANGE} AND p.model_version = :v GROUP BY 1 ORDER BY 1"),
        {"m": model, "v": version, "a": start_ms, "b": end_ms})
    return tuple(GroupCounts(r.key, None, _counts(r)) for r in rows)


def heatmap(conn: Connection, model: str, version: str, start_ms: int, end_ms: int,
            first: str, second: str) -> tuple[GroupCounts, ...]:
    """Counts per pair of attribute values (``attrs`` keys, e.g. region x device)."""
    rows = conn.execute(text(
        f"SELECT coalesce(a.attrs->>:x, 'missing') AS key, coalesce(a.attrs->>:y, 'missing') "
        f"AS second, {_COUNTS} FROM predictions p {_LABEL} "
        "CROSS JOIN LATERAL (SELECT prediction_attrs(p.attr_ids) AS attrs) a "
        f"WHERE {_RANGE} AND p.model_version = :v GROUP BY 1, 2 ORDER BY 1, 2"),
        {"m": model, "v": version, "a": start_ms, "b": end_ms, "x": first, "y": second})
    return tuple(GroupCounts(r.key, r.second, _counts(r)) for r in rows)


def slice_attributes(conn: Connection) -> tuple[str, ...]:
    """Attributes the monitor slices by (those with a slice admission)."""
    rows = conn.execute(text("SELECT DISTINCT attribute FROM slice_admissions ORDER BY 1"))
    return tuple(r.attribute for r in rows)


def version_summaries(conn: Connection, model: str, start_ms: int,
                      end_ms: int) -> tuple[VersionSummary, ...]:
    """Side-by-side figures per version: traffic, errors, latency quantiles, accuracy."""
    rows = conn.execute(text(
        f"SELECT p.model_version, {_COUNTS}, "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY p.latency_ms) AS p50, "
        "percentile_cont(0.95) WITHIN GROUP (ORDER BY p.latency_ms) AS p95, "
        "percentile_cont(0.99) WITHIN GROUP (ORDER BY p.latency_ms) AS p99, "
        "min(p.ts_ms) AS first_ms, max(p.ts_ms) AS last_ms "
        f"FROM predictions p {_LABEL} WHERE {_RANGE} GROUP BY 1 ORDER BY n DESC"),
        {"m": model, "a": start_ms, "b": end_ms})
    return tuple(VersionSummary(r.model_version, _counts(r), r.p50, r.p95, r.p99,
                                int(r.first_ms), int(r.last_ms)) for r in rows)


@dataclass(frozen=True, slots=True)
class ClassShare:
    version: str
    pred: int
    n: int


def class_shares(conn: Connection, model: str, versions: Sequence[str], start_ms: int,
                 end_ms: int) -> tuple[ClassShare, ...]:
    """Predicted-class counts per version (errors excluded)."""
    rows = conn.execute(text(
        "SELECT p.model_version, p.pred, count(*) AS n FROM predictions p "
        f"WHERE {_RANGE} AND p.model_version = ANY(:vs) AND NOT p.is_error "
        "GROUP BY 1, 2 ORDER BY 1, 2"),
        {"m": model, "vs": list(versions), "a": start_ms, "b": end_ms})
    return tuple(ClassShare(r.model_version, int(r.pred), int(r.n)) for r in rows)
