"""The ``slice_sketches`` and ``slice_admissions`` tables: per (attribute, window), the
heavy-hitters sketch of its values and the values admitted to their own slice. An admission is
inserted once (the first committed decision wins; every process then reads the same row)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

_KEYS = "unnest(CAST(:a AS text[]), CAST(:w AS bigint[]))"
Key = tuple[str, int]  # (attribute, window_start_ms)


def load(conn: Connection, keys: Iterable[Key]) -> dict[Key, list[str]]:
    """The stored admissions among ``keys``."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    rows = conn.execute(text(
        "SELECT attribute, window_start_ms, admitted FROM slice_admissions "
        f"WHERE (attribute, window_start_ms) IN (SELECT * FROM {_KEYS})"),
        {"a": [k[0] for k in keys], "w": [k[1] for k in keys]}).all()
    return {(r.attribute, r.window_start_ms): list(r.admitted) for r in rows}


def decide_many(conn: Connection, decisions: Sequence[tuple[Key, list[str], int | None]]
                ) -> dict[Key, list[str]]:
    """Store each ``(key, admitted, source_window_ms)`` unless a decision exists for its key
    (inserted in key order, as concurrent processes lock); return the stored ones."""
    rows = sorted(decisions, key=lambda d: d[0])
    conn.execute(text(
        "INSERT INTO slice_admissions (attribute, window_start_ms, admitted, source_window_ms) "
        "SELECT a, w, CAST(v AS jsonb), s FROM unnest(CAST(:a AS text[]), CAST(:w AS bigint[]), "
        "CAST(:v AS text[]), CAST(:s AS bigint[])) AS t(a, w, v, s) ORDER BY a, w "
        "ON CONFLICT DO NOTHING"),
        {"a": [k[0] for k, _, _ in rows], "w": [k[1] for k, _, _ in rows],
         "v": [json.dumps(v) for _, v, _ in rows], "s": [s for _, _, s in rows]})
    return load(conn, [k for k, _, _ in rows])


def previous_sketches(conn: Connection, keys: Iterable[Key]
                      ) -> dict[Key, tuple[int, dict[str, int]]]:
    """Per key, the sketch of the latest window before its window (absent without one)."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    rows = conn.execute(text(
        "SELECT k.a, k.w, s.window_start_ms, s.counts "
        f"FROM {_KEYS} AS k(a, w) CROSS JOIN LATERAL (SELECT window_start_ms, counts "
        "FROM slice_sketches WHERE attribute = k.a AND window_start_ms < k.w "
        "ORDER BY window_start_ms DESC LIMIT 1) AS s"),
        {"a": [k[0] for k in keys], "w": [k[1] for k in keys]}).all()
    return {(r.a, r.w): (r.window_start_ms, dict(r.counts)) for r in rows}


def lock_sketches(conn: Connection, keys: Iterable[Key]) -> dict[Key, dict[str, int]]:
    """The sketches of ``keys`` (empty ones created), locked in key order until commit."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    params = {"a": [k[0] for k in keys], "w": [k[1] for k in keys]}
    conn.execute(text(
        "INSERT INTO slice_sketches (attribute, window_start_ms, counts) "
        f"SELECT a, w, '{{}}'::jsonb FROM {_KEYS} AS t(a, w) ORDER BY a, w "
        "ON CONFLICT DO NOTHING"), params)
    rows = conn.execute(text(
        "SELECT attribute, window_start_ms, counts FROM slice_sketches "
        f"WHERE (attribute, window_start_ms) IN (SELECT * FROM {_KEYS}) "
        "ORDER BY attribute, window_start_ms FOR UPDATE"), params).all()
    return {(r.attribute, r.window_start_ms): dict(r.counts) for r in rows}


def save_sketches(conn: Connection, sketches: Mapping[Key, Mapping[str, int]]) -> None:
    if sketches:
        conn.execute(text(
            "UPDATE slice_sketches SET counts = :c, updated_at = now() "
            "WHERE attribute = :a AND window_start_ms = :w").bindparams(
                bindparam("c", type_=JSONB)),
            [{"a": a, "w": w, "c": dict(c)} for (a, w), c in sketches.items()])


def prune(conn: Connection, before_ms: int) -> None:
    """Forget the sketches of windows starting before ``before_ms`` (admissions stay: small,
    and a late event of an old window must land in the slices its window had)."""
    conn.execute(text("DELETE FROM slice_sketches WHERE window_start_ms < :t"), {"t": before_ms})


