"""The ``embedding_dims`` and ``parked_events`` tables: the decided embedding dimension per
(model, version) and the valid events that wait for it. A version's row is the lock that
serialises its decision across processes (``SELECT ... FOR UPDATE``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, text

_KEYS = "unnest(CAST(:m AS text[]), CAST(:v AS text[]))"
Key = tuple[str, str]  # (model, model_version)


def decided(conn: Connection) -> dict[Key, int]:
    rows = conn.execute(text("SELECT model, model_version, dim FROM embedding_dims "
                             "WHERE dim IS NOT NULL")).all()
    return {(r.model, r.model_version): r.dim for r in rows}


def lock(conn: Connection, keys: Iterable[Key]) -> dict[Key, tuple[int | None, float]]:
    """Per key (created if absent, locked in key order): (dim or None, seconds since the
    version's first parked event)."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    params = {"m": [k[0] for k in keys], "v": [k[1] for k in keys]}
    conn.execute(text("INSERT INTO embedding_dims (model, model_version) SELECT m, v FROM "
                      f"{_KEYS} AS t(m, v) ORDER BY m, v ON CONFLICT DO NOTHING"), params)
    rows = conn.execute(text(
        "SELECT model, model_version, dim, extract(epoch FROM now() - created_at) AS age "
        f"FROM embedding_dims WHERE (model, model_version) IN (SELECT * FROM {_KEYS}) "
        "ORDER BY model, model_version FOR UPDATE"), params).all()
    return {(r.model, r.model_version): (r.dim, float(r.age)) for r in rows}


def reference_dim(conn: Connection, key: Key) -> int | None:
    """The embedding dimension of the version's active reference profile, if any."""
    dim = conn.execute(text(
        "SELECT (summary->>'embedding_dim')::int FROM reference_profiles WHERE model = :m "
        "AND model_version = :v AND active"), {"m": key[0], "v": key[1]}).scalar()
    return dim or None


def previous_version_dim(conn: Connection, key: Key) -> int | None:
    """The dimension decided last for another version of the model (a canary's prior)."""
    return conn.execute(text(
        "SELECT dim FROM embedding_dims WHERE model = :m AND model_version <> :v AND dim IS NOT "
        "NULL ORDER BY decided_at DESC, model_version DESC LIMIT 1"),
        {"m": key[0], "v": key[1]}).scalar()


def decide(conn: Connection, key: Key, dim: int, source: str) -> None:
    conn.execute(text("UPDATE embedding_dims SET dim = :d, source = :s, decided_at = now() "
                      "WHERE model = :m AND model_version = :v"),
                 {"d": dim, "s": source, "m": key[0], "v": key[1]})


PARKED_COLUMNS = ("topic", "kafka_partition", "kafka_offset", "model", "model_version", "dim",
                  "event_id", "message_key", "raw")


def park(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """``rows``: dicts keyed by :data:`PARKED_COLUMNS`; a row parked already stays as it is."""
    if rows:
        names = ", ".join(PARKED_COLUMNS)
        values = ", ".join(f":{c}" for c in PARKED_COLUMNS)
        conn.execute(text(f"INSERT INTO parked_events ({names}) VALUES ({values}) "
                          "ON CONFLICT DO NOTHING"), list(rows))


def votes(conn: Connection, key: Key) -> dict[int, int]:
    """Parked events per embedding length of one version."""
    rows = conn.execute(text("SELECT dim, count(*) AS n FROM parked_events WHERE model = :m "
                             "AND model_version = :v GROUP BY dim"),
                        {"m": key[0], "v": key[1]}).all()
    return {r.dim: r.n for r in rows}


def take_parked(conn: Connection, key: Key) -> list[Any]:
    """Delete and return a version's parked events in (topic, partition, offset) order."""
    rows = conn.execute(text(
        "DELETE FROM parked_events WHERE model = :m AND model_version = :v RETURNING topic, "
        "kafka_partition, kafka_offset, message_key, raw"), {"m": key[0], "v": key[1]}).all()
    return sorted(rows, key=lambda r: (r.topic, r.kafka_partition, r.kafka_offset))


def pending(conn: Connection) -> list[Any]:
    """Undecided versions with parked events: model, model_version, n, oldest parked_at."""
    return conn.execute(text(
        "SELECT model, model_version, count(*) AS n, min(parked_at) AS since FROM parked_events "
        "GROUP BY 1, 2 ORDER BY 1, 2")).all()
