"""The ``findings`` table: the latest evaluation of each (detector, window key, subject).

:func:`upsert_findings` is the one place a finding becomes a row, for every producer (window
detectors at checkpoint, SLO burn rates, version comparisons, worst-slice discovery); a
re-evaluation overwrites the row and counts up its ``revision``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text

from monitor.contract import Finding, Severity, Status, finite_or_none
from monitor.store.keys import WindowKey

_UPSERT = (
    "INSERT INTO findings (detector, detector_version, model, model_version, slice, "
    "window_start_ms, window_end_ms, subject, status, severity, test, score, threshold, "
    "p_value, n, details, revision) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "%s, %s, %s, CAST(%s AS jsonb), 1) "
    "ON CONFLICT (detector, model, model_version, slice, window_start_ms, subject) "
    "DO UPDATE SET detector_version = excluded.detector_version, status = excluded.status, "
    "severity = excluded.severity, test = excluded.test, score = excluded.score, "
    "threshold = excluded.threshold, p_value = excluded.p_value, n = excluded.n, "
    "details = excluded.details, window_end_ms = excluded.window_end_ms, "
    "revision = findings.revision + 1, evaluated_at = now()")


def upsert_findings(conn: Connection, rows: Sequence[tuple[WindowKey, int, Finding]]) -> None:
    """``rows``: (key, window_end_ms, finding). One row per statement, in order (a key written
    twice counts up its revision twice), sent by psycopg's ``executemany`` (pipelined) on the
    connection's transaction: SQLAlchemy's per-row parameter processing of a few hundred
    findings cost more client CPU than the statements (bench/upsert_findings.py)."""
    if not rows:
        return
    params = [(f.detector, f.detector_version, k.model, k.model_version, k.slice,
               k.window_start_ms, end, f.subject, f.status.value, f.severity.value, f.test,
               finite_or_none(f.score), finite_or_none(f.threshold), finite_or_none(f.p_value),
               int(f.n), orjson.dumps(f.details, option=orjson.OPT_SERIALIZE_NUMPY).decode())
              for k, end, f in rows]
    with conn.connection.driver_connection.cursor() as cur:
        cur.executemany(_UPSERT, params)


#: the window keys as a table ``k`` joined to findings ``f`` (parameters: :func:`_key_params`)
_KEYS = ("unnest(CAST(:kd AS text[]), CAST(:km AS text[]), CAST(:kv AS text[]), "
         "CAST(:ks AS text[]), CAST(:kw AS bigint[])) AS k(d, m, v, s, w) "
         "ON f.detector = k.d AND f.model = k.m AND f.model_version = k.v AND f.slice = k.s ")


def _key_params(keys: Sequence[WindowKey]) -> dict[str, list]:
    """The ``:kd, :km, :kv, :ks, :kw`` arrays of these window keys."""
    return {"kd": [k.detector for k in keys], "km": [k.model for k in keys],
            "kv": [k.model_version for k in keys], "ks": [k.slice for k in keys],
            "kw": [k.window_start_ms for k in keys]}


def revisions(conn: Connection, keys: Sequence[WindowKey], subject: str = "") -> dict[WindowKey, int]:
    """How many times each key's finding ``subject`` has been written (its ``revision``; keys
    never evaluated are absent): the number of earlier looks at that window."""
    if not keys:
        return {}
    rows = conn.execute(text(
        "SELECT f.detector, f.model, f.model_version, f.slice, f.window_start_ms, f.revision "
        f"FROM findings f JOIN {_KEYS} "
        "AND f.window_start_ms = k.w WHERE f.subject = :sub"),
        _key_params(keys) | {"sub": subject}).all()
    return {WindowKey(*r[:5]): int(r.revision) for r in rows}


def labels_settled(conn: Connection, keys: Sequence[WindowKey]) -> set[WindowKey]:
    """The keys whose main finding says their labels have settled (their decisive look is
    spent: :class:`monitor.contract.LabelDecision`)."""
    if not keys:
        return set()
    rows = conn.execute(text(
        "SELECT f.detector, f.model, f.model_version, f.slice, f.window_start_ms "
        f"FROM findings f JOIN {_KEYS} "
        "AND f.window_start_ms = k.w WHERE f.subject = '' "
        "AND f.details->>'labels_settled' = 'true'"),
        _key_params(keys)).all()
    return {WindowKey(*r) for r in rows}


def keep_only(conn: Connection, rows: Sequence[tuple[WindowKey, Finding]]) -> None:
    """Delete the findings of the keys in ``rows`` whose subject is not among theirs: a
    re-evaluation that no longer reports a subject (a group that became the reference) leaves
    no row from an earlier look behind."""
    if not rows:
        return
    keys = sorted({k for k, _ in rows}, key=lambda k: k.as_tuple())
    conn.execute(text(
        "DELETE FROM findings f WHERE (f.detector, f.model, f.model_version, f.slice, "
        "f.window_start_ms) IN (SELECT * FROM unnest(CAST(:kd AS text[]), CAST(:km AS text[]), "
        "CAST(:kv AS text[]), CAST(:ks AS text[]), CAST(:kw AS bigint[]))) "
        "AND (f.detector, f.model, f.model_version, f.slice, f.window_start_ms, f.subject) "
        "NOT IN (SELECT * FROM unnest(CAST(:rd AS text[]), CAST(:rm AS text[]), "
        "CAST(:rv AS text[]), CAST(:rs AS text[]), CAST(:rw AS bigint[]), "
        "CAST(:rsub AS text[])))"),
        _key_params(keys) | {
         "rd": [k.detector for k, _ in rows], "rm": [k.model for k, _ in rows],
         "rv": [k.model_version for k, _ in rows], "rs": [k.slice for k, _ in rows],
         "rw": [k.window_start_ms for k, _ in rows], "rsub": [f.subject for _, f in rows]})


def delete_window(conn: Connection, key: WindowKey) -> None:
    """Drop every finding (all subjects) of one key, before a re-run replaces them."""
    conn.execute(text("DELETE FROM findings WHERE detector = :d AND model = :m AND "
                      "model_version = :v AND slice = :s AND window_start_ms = :w"),
                 {"d": key.detector, "m": key.model, "v": key.model_version, "s": key.slice,
                  "w": key.window_start_ms})


def group_findings(conn: Connection, model: str, version: str, slice_: str,
                   window_ms: int) -> list[Finding]:
    """Stored findings of one (model, version, slice, window), for composite alert rules."""
    rows = conn.execute(text(
        "SELECT detector, detector_version, status, severity, score, threshold, p_value, n, "
        "subject, test, details FROM findings WHERE model = :m AND model_version = :v "
        "AND slice = :s AND window_start_ms = :w ORDER BY detector, subject"),
        {"m": model, "v": version, "s": slice_, "w": window_ms}).all()
    return [Finding(r.detector, r.detector_version, Status(r.status), r.score, r.threshold,
                    r.p_value, Severity(r.severity), int(r.n), r.subject, r.test, r.details)
            for r in rows]


def list_findings(engine: Engine, since_ms: int | None = None, detector: str | None = None,
                  status: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """What ``vitmon findings --json`` prints: newest windows first."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT detector, detector_version, model, model_version, slice, subject, "
            "window_start_ms, window_end_ms, status, severity, test, score, threshold, p_value, n, "
            "revision, evaluated_at FROM findings "
            "WHERE (CAST(:since AS bigint) IS NULL OR window_start_ms >= :since) "
            "AND (CAST(:det AS text) IS NULL OR detector = :det) "
            "AND (CAST(:st AS text) IS NULL OR status = :st) "
            "ORDER BY window_start_ms DESC, detector, model, model_version, slice, subject "
            "LIMIT :lim"), {"since": since_ms, "det": detector, "st": status, "lim": limit}).all()
    return [{**r._asdict(), "evaluated_at": r.evaluated_at.isoformat()} for r in rows]


def delete_before(conn: Connection, cutoff_ms: int, batch_size: int) -> int:
    """Delete up to ``batch_size`` findings of windows that ended before ``cutoff_ms`` (event
    time, through ``ix_findings_window_end``); return how many."""
    return conn.execute(text(
        "DELETE FROM findings WHERE ctid = ANY(ARRAY(SELECT ctid FROM findings "
        "WHERE window_end_ms < :c LIMIT :b))"), {"c": cutoff_ms, "b": batch_size}).rowcount
