"""The ``slice_sketches`` and ``slice_admissions`` tables: per (attribute, window), the
heavy-hitters sketch of its values and the values admitted to their own slice. An admission is
inserted once (the first committed decision wins; every process then reads the same row)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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


def decide(conn: Connection, key: Key, admitted: list[str], source_window_ms: int | None
           ) -> list[str]:
    """Store ``admitted`` for ``key`` unless a decision exists; return the stored one."""
    conn.execute(text(
        "INSERT INTO slice_admissions (attribute, window_start_ms, admitted, source_window_ms) "
        "VALUES (:a, :w, :v, :s) ON CONFLICT DO NOTHING").bindparams(bindparam("v", type_=JSONB)),
        {"a": key[0], "w": key[1], "v": admitted, "s": source_window_ms})
    return list(conn.execute(text(
        "SELECT admitted FROM slice_admissions WHERE attribute = :a AND window_start_ms = :w"),
        {"a": key[0], "w": key[1]}).scalar_one())


def previous_sketch(conn: Connection, key: Key) -> tuple[int, dict[str, int]] | None:
    """The sketch of the latest window before ``key``'s window (None without one)."""
    row = conn.execute(text(
        "SELECT window_start_ms, counts FROM slice_sketches WHERE attribute = :a "
        "AND window_start_ms < :w ORDER BY window_start_ms DESC LIMIT 1"),
        {"a": key[0], "w": key[1]}).first()
    return None if row is None else (row.window_start_ms, dict(row.counts))


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


