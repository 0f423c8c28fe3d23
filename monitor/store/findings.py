"""Upsert of findings produced outside the per-window detector path (SLO burn rates, version
health comparisons) into the same ``findings`` table, with the same revision semantics."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from sqlalchemy import Connection, text

from monitor.contract import Finding, finite_or_none
from monitor.windows import DeltaKey

_UPSERT = text(
    "INSERT INTO findings (detector, detector_version, model, model_version, slice, "
    "window_start_ms, window_end_ms, subject, status, severity, test, score, threshold, "
    "p_value, n, details, revision) VALUES (:d, :dv, :m, :v, :s, :w, :e, :sub, :st, :sev, "
    ":test, :score, :thr, :p, :n, CAST(:details AS jsonb), 1) "
    "ON CONFLICT (detector, model, model_version, slice, window_start_ms, subject) "
    "DO UPDATE SET detector_version = excluded.detector_version, status = excluded.status, "
    "severity = excluded.severity, test = excluded.test, score = excluded.score, "
    "threshold = excluded.threshold, p_value = excluded.p_value, n = excluded.n, "
    "details = excluded.details, window_end_ms = excluded.window_end_ms, "
    "revision = findings.revision + 1, evaluated_at = now()")


def upsert_findings(conn: Connection, rows: Sequence[tuple[DeltaKey, int, Finding]]) -> None:
    """``rows``: (key, window_end_ms, finding)."""
    if not rows:
        return
    conn.execute(_UPSERT, [
        {"d": f.detector, "dv": f.detector_version, "m": k.model, "v": k.model_version,
         "s": k.slice, "w": k.window_start_ms, "e": end, "sub": f.subject,
         "st": f.status.value, "sev": f.severity.value, "test": f.test,
         "score": finite_or_none(f.score), "thr": finite_or_none(f.threshold),
         "p": finite_or_none(f.p_value), "n": int(f.n),
         "details": orjson.dumps(f.details, option=orjson.OPT_SERIALIZE_NUMPY).decode()}
        for k, end, f in rows])
