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
from monitor.store import copy_binary as cb
from monitor.store.keys import WindowKey

#: the rows as one set of binary arrays (:func:`_columns`), one statement per batch of
#: distinct keys: a statement per row cost PostgreSQL ~0.35 ms each (3,900 findings a window
#: set of bench/ingest.py: 1.5 s of the checkpoint's wall time), and the client its
#: parameter adaptation per value
_UPSERT = (
    "INSERT INTO findings (detector, detector_version, model, model_version, slice, "
    "window_start_ms, window_end_ms, subject, status, severity, test, score, threshold, "
    "p_value, n, details, revision) SELECT d, dv, m, v, s, w, we, sub, st, sev, t, sc, th, p, "
    "n, CAST(det AS jsonb), 1 FROM unnest(%(d)b, %(dv)b, %(m)b, %(v)b, %(s)b, %(w)b, %(we)b, "
    "%(sub)b, %(st)b, %(sev)b, %(t)b, %(sc)b, %(th)b, %(p)b, %(n)b, %(det)b) "
    "AS r(d, dv, m, v, s, w, we, sub, st, sev, t, sc, th, p, n, det) "
    "ON CONFLICT (detector, model, model_version, slice, window_start_ms, subject) "
    "DO UPDATE SET detector_version = excluded.detector_version, status = excluded.status, "
    "severity = excluded.severity, test = excluded.test, score = excluded.score, "
    "threshold = excluded.threshold, p_value = excluded.p_value, n = excluded.n, "
    "details = excluded.details, window_end_ms = excluded.window_end_ms, "
    "revision = findings.revision + 1, evaluated_at = now()")


def upsert_findings(conn: Connection, rows: Sequence[tuple[WindowKey, int, Finding]]) -> None:
    """``rows``: (key, window_end_ms, finding), written in order: a key written twice counts up
    its revision twice. Each run of rows with distinct keys is one statement (an ``INSERT ...
    ON CONFLICT`` may touch a row once), its columns sent as binary arrays
    (:mod:`monitor.store.copy_binary`) on the connection's transaction: no SQLAlchemy or psycopg
    step per value (bench/upsert_findings.py)."""
    with conn.connection.driver_connection.cursor() as cur:
        cb.register_arrays(cur.adapters)
        for batch in _distinct_runs(rows):
            cur.execute(_UPSERT, _columns(batch))


def _distinct_runs(rows: Sequence[tuple[WindowKey, int, Finding]]
                   ) -> list[Sequence[tuple[WindowKey, int, Finding]]]:
    """``rows`` cut, in order, into the fewest runs without a (key, subject) twice."""
    runs, start, seen = [], 0, set()
    for i, (k, _, f) in enumerate(rows):
        ident = (k, f.subject)
        if ident in seen:
            runs.append(rows[start:i])
            start, seen = i, set()
        seen.add(ident)
    if start < len(rows):
        runs.append(rows[start:])
    return runs


def _columns(rows: Sequence[tuple[WindowKey, int, Finding]]) -> dict[str, cb.ArrayParam]:
    """The parameters of :data:`_UPSERT`: one array per column."""
    fs = [f for _, _, f in rows]
    return {
        "d": cb.text_array([f.detector for f in fs]),
        "dv": cb.int_array([f.detector_version for f in fs], cb.INT4_OID),
        "m": cb.text_array([k.model for k, _, _ in rows]),
        "v": cb.text_array([k.model_version for k, _, _ in rows]),
        "s": cb.text_array([k.slice for k, _, _ in rows]),
        "w": cb.int_array([k.window_start_ms for k, _, _ in rows]),
        "we": cb.int_array([end for _, end, _ in rows]),
        "sub": cb.text_array([f.subject for f in fs]),
        "st": cb.text_array([f.status.value for f in fs]),
        "sev": cb.text_array([f.severity.value for f in fs]),
        "t": cb.text_array([f.test for f in fs]),
        "sc": cb.float_array([finite_or_none(f.score) for f in fs]),
        "th": cb.float_array([finite_or_none(f.threshold) for f in fs]),
        "p": cb.float_array([finite_or_none(f.p_value) for f in fs]),
        "n": cb.int_array([int(f.n) for f in fs]),
        "det": cb.text_array([orjson.dumps(f.details, option=orjson.OPT_SERIALIZE_NUMPY).decode()
                              for f in fs])}


#: the window keys as a table ``k`` joined to findings ``f`` (parameters: :func:`_key_params`)
_KEYS = ("unnest(%(kd)b, %(km)b, %(kv)b, %(ks)b, %(kw)b) AS k(d, m, v, s, w) "
         "ON f.detector = k.d AND f.model = k.m AND f.model_version = k.v AND f.slice = k.s ")


def _key_params(keys: Sequence[WindowKey], prefix: str = "k") -> dict[str, cb.ArrayParam]:
    """The ``%(kd)b, %(km)b, %(kv)b, %(ks)b, %(kw)b`` binary arrays of these window keys
    (:mod:`monitor.store.copy_binary`: no step per element; another ``prefix`` than ``k``
    names a second set)."""
    return {f"{prefix}d": cb.text_array([k.detector for k in keys]),
            f"{prefix}m": cb.text_array([k.model for k in keys]),
            f"{prefix}v": cb.text_array([k.model_version for k in keys]),
            f"{prefix}s": cb.text_array([k.slice for k in keys]),
            f"{prefix}w": cb.int_array([k.window_start_ms for k in keys])}


def _fetch(conn: Connection, sql: str, params: dict[str, Any]) -> list[tuple]:
    """``sql`` with binary array parameters on the transaction's psycopg connection: the rows
    it returns (none for a statement without)."""
    with conn.connection.driver_connection.cursor() as cur:
        cb.register_arrays(cur.adapters)
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def revisions(conn: Connection, keys: Sequence[WindowKey], subject: str = "") -> dict[WindowKey, int]:
    """How many times each key's finding ``subject`` has been written (its ``revision``; keys
    never evaluated are absent): the number of earlier looks at that window."""
    if not keys:
        return {}
    rows = _fetch(conn,
                  "SELECT f.detector, f.model, f.model_version, f.slice, f.window_start_ms, "
                  f"f.revision FROM findings f JOIN {_KEYS} "
                  "AND f.window_start_ms = k.w WHERE f.subject = %(sub)s",
                  _key_params(keys) | {"sub": subject})
    return {WindowKey(*r[:5]): int(r[5]) for r in rows}


def labels_settled(conn: Connection, keys: Sequence[WindowKey]) -> set[WindowKey]:
    """The keys whose main finding says their labels have settled (their decisive look is
    spent: :class:`monitor.contract.LabelDecision`)."""
    if not keys:
        return set()
    rows = _fetch(conn,
                  "SELECT f.detector, f.model, f.model_version, f.slice, f.window_start_ms "
                  f"FROM findings f JOIN {_KEYS} "
                  "AND f.window_start_ms = k.w WHERE f.subject = '' "
                  "AND f.details->>'labels_settled' = 'true'", _key_params(keys))
    return {WindowKey(*r) for r in rows}


def keep_only(conn: Connection, rows: Sequence[tuple[WindowKey, Finding]]) -> None:
    """Delete the findings of the keys in ``rows`` whose subject is not among theirs: a
    re-evaluation that no longer reports a subject (a group that became the reference) leaves
    no row from an earlier look behind."""
    if not rows:
        return
    keys = sorted({k for k, _ in rows}, key=lambda k: k.as_tuple())
    _fetch(conn,
           "DELETE FROM findings f WHERE (f.detector, f.model, f.model_version, f.slice, "
           "f.window_start_ms) IN (SELECT * FROM unnest(%(kd)b, %(km)b, %(kv)b, %(ks)b, "
           "%(kw)b)) AND (f.detector, f.model, f.model_version, f.slice, f.window_start_ms, "
           "f.subject) NOT IN (SELECT * FROM unnest(%(rd)b, %(rm)b, %(rv)b, %(rs)b, %(rw)b, "
           "%(rsub)b))",
           _key_params(keys) | _key_params([k for k, _ in rows], "r")
           | {"rsub": cb.text_array([f.subject for _, f in rows])})


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
