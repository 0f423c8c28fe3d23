"""The ``predictions`` table: accepted predictions, kept for the label join until the label
horizon passes. Compact: attributes and slices are ``int[]`` of :mod:`monitor.store.terms` ids,
not JSONB and text. Partitioned by event time (one partition per UTC day, created on demand), so
retention is a ``DROP`` of old partitions (:func:`drop_partitions_before`), never a long DELETE.
An ``event_id`` is stored once: a re-sent event is a duplicate whether it carries its
original ``ts`` (the primary key ``(event_id, ts_ms)``) or a new one (:func:`insert_new` looks
the id up in every partition first), across restarts and processes. Two copies with different
``ts`` checkpointed by two processes at the same moment would both be stored; producers key by
``event_id``, so copies share a partition and one process reads both."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from monitor.contract import Batch
from monitor.store import locks
from monitor.store.terms import Terms

DAY_MS = 86_400_000
_COLUMNS = ("event_id, ts_ms, model, model_version, window_start_ms, pred, confidence, "
            "is_error, latency_ms, slice_ids, attr_ids, input_sha256, sample_uri, "
            "kafka_partition, kafka_offset")
_BOUND = re.compile(r"TO \('?(-?\d+)'?\)")


def partition_name(day_ms: int) -> str:
    return "predictions_p" + datetime.fromtimestamp(day_ms / 1000, timezone.utc).strftime("%Y%m%d")


def ensure_partitions(conn: Connection, ts_ms: Sequence[np.ndarray]) -> list[str]:
    """Create the day partitions that the event times ``ts_ms`` need; return those created.
    Takes the partition lock for the rest of the transaction (exclusive if it creates, else
    shared), so call it once per checkpoint, before inserting."""
    days = sorted({int(d) for t in ts_ms if len(t) for d in np.unique(t // DAY_MS)})
    names = {partition_name(d * DAY_MS): d * DAY_MS for d in days}
    missing = _missing(conn, names)
    conn.execute(text("SELECT pg_advisory_xact_lock_shared(:k)" if not missing else
                      "SELECT pg_advisory_xact_lock(:k)"), {"k": locks.PARTITION})
    if not missing:
        # Checked again under the lock: retention (this process's or another's) may have
        # dropped one between the look and the lock. Then create it under the exclusive lock
        # (two upgrading at once deadlock: PostgreSQL aborts one, a transient error retried).
        missing = _missing(conn, names)
        if missing:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": locks.PARTITION})
    for name in missing:
        lo = names[name]
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF predictions "
                          f"FOR VALUES FROM ({lo}) TO ({lo + DAY_MS})"))
    return missing


def _missing(conn: Connection, names: Iterable[str]) -> list[str]:
    names = list(names)
    have = {r[0] for r in conn.execute(text(
        "SELECT relname FROM pg_class WHERE relname = ANY(:n)"), {"n": names}).all()}
    return [n for n in names if n not in have]


def drop_partitions_before(conn: Connection, cutoff_ms: int) -> list[str]:
    """Drop every day partition that ends by ``cutoff_ms``; return their names."""
    rows = conn.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'predictions'::regclass "
        "ORDER BY 1")).all()
    old = [r.relname for r in rows if (m := _BOUND.search(r.bound)) and int(m[1]) <= cutoff_ms]
    if old:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": locks.PARTITION})
        for name in old:
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    return old


def partitions(conn: Connection) -> list[str]:
    """The day partitions, oldest first."""
    return [r[0] for r in conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'predictions'::regclass ORDER BY 1")).all()]


def insert_new(conn: Connection, batch: Batch, window_starts: np.ndarray,
               slice_names: Sequence[np.ndarray], terms: Terms) -> np.ndarray:
    """COPY ``batch`` into a temp table, insert the rows whose ``event_id`` is not stored yet
    (with any ``ts``), and return a mask of the rows inserted. ``slice_names``: per slice
    dimension, each event's slice name (every event is also in ``all``); ``batch.extras``
    carries ``_partition`` and ``_offset``. Call :func:`ensure_partitions` first."""
    n = len(batch)
    if n == 0:
        return np.zeros(0, dtype=bool)
    none = np.full(n, None, dtype=object)
    sha = batch.extras.get("input_sha256", none)
    uri = batch.extras.get("sample_uri", none)
    part, off = batch.extras["_partition"], batch.extras["_offset"]
    slice_ids = _id_arrays(conn, terms, [("", np.full(n, "all", dtype=object)),
                                         *(("", names) for names in slice_names)], n)
    attr_ids = _id_arrays(conn, terms, [(f"{k}=", v) for k, v in sorted(batch.attrs.items())], n)
    columns = (_text(batch.event_id), _ints(batch.ts_ms), _text(batch.model),
               _text(batch.model_version), _ints(window_starts), _ints(batch.pred),
               _floats(batch.confidence, nan=r"\N"), _BOOLS[batch.is_error.astype(np.intp)].tolist(),
               _floats(batch.latency_ms), slice_ids, attr_ids, _text(sha), _text(uri), _ints(part),
               _ints(off))
    # One COPY of the whole batch, formatted here as COPY text (what psycopg's per-value
    # dumpers cost ~25 us a row for: the int[] columns above all).
    data = "\n".join(map("\t".join, zip(*columns, strict=True))) + "\n"
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS tmp_predictions "
                    "(LIKE predictions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        with cur.copy(f"COPY tmp_predictions ({_COLUMNS}) FROM STDIN") as copy:
            copy.write(data.encode())
        cur.execute(f"INSERT INTO predictions ({_COLUMNS}) SELECT {_COLUMNS} "
                    "FROM tmp_predictions t WHERE NOT EXISTS (SELECT 1 FROM predictions p "
                    "WHERE p.event_id = t.event_id) ON CONFLICT (event_id, ts_ms) DO NOTHING "
                    "RETURNING event_id")
        inserted = {r[0] for r in cur.fetchall()}
    if len(inserted) == n:
        return np.ones(n, dtype=bool)
    return np.fromiter((e in inserted for e in batch.event_id), dtype=bool, count=n)


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(column: np.ndarray) -> list[str]:
    """A text column in COPY text format: None as ``\\N``, backslash, tab, newline and CR
    escaped (only scanned for once per column: they are rare)."""
    values = column.tolist()
    if None in values:
        values = [r"\N" if v is None else str(v) for v in values]
    else:
        values = [v if type(v) is str else str(v) for v in values]
    joined = "".join(values)
    if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
        # a literal \N string stays distinct from NULL once its backslash is escaped
        nulls = [v is None for v in column.tolist()]
        values = [r"\N" if null else v.translate(_ESCAPES) for v, null in zip(values, nulls,
                                                                                strict=True)]
    return values


def _ints(column: np.ndarray) -> list[str]:
    return list(map(str, np.asarray(column).tolist()))


_BOOLS = np.array(["f", "t"], dtype=object)


def _floats(column: np.ndarray, nan: str | None = None) -> list[str]:
    """``repr`` of each value (one ``repr`` of the list, split: no Python loop); NaN as ``nan``
    unless given. ``repr`` of a float never holds ", "."""
    values = np.asarray(column, dtype=np.float64).tolist()
    if not values:
        return []
    out = repr(values)[1:-1].split(", ")
    if nan is not None and "nan" in out:
        out = [nan if v == "nan" else v for v in out]
    return out


def _id_arrays(conn: Connection, terms: Terms, columns: Sequence[tuple[str, np.ndarray]],
               n: int) -> list[str]:
    """Per row, the ids of the terms ``prefix + str(value)`` of its non-None values across
    ``columns`` ((prefix, values) pairs) as a PostgreSQL array literal (``{3,17}``). Ids are
    found per distinct value, literals formatted per distinct combination of ids (a few
    hundred in a batch of thousands of rows); no string sort (``np.unique`` of 50,000 strings
    per column was ~7 us a row)."""
    if not columns:
        return ["{}"] * n
    matrix = np.full((n, len(columns)), -1, dtype=np.int64)
    key, radix = np.zeros(n, dtype=np.int64), 1  # a row's combination, mixed radix
    for j, (prefix, col) in enumerate(columns):
        present = ~np.equal(col, None)
        if not present.any():
            continue
        uniq, codes = _factorize(col[present])
        names = [prefix + u for u in uniq]
        ids = terms.ids(conn, names)
        matrix[present, j] = np.array([ids[t] for t in names], dtype=np.int64)[codes]
        if radix:
            key[present] += (codes + 1) * radix
            radix = radix * (len(uniq) + 1) if radix * (len(uniq) + 1) < 2**62 else 0
    if radix:
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        combos = matrix[first]
    else:  # too many combinations for one int64: compare the rows themselves
        combos, inverse = np.unique(matrix, axis=0, return_inverse=True)
    literals = np.array(["{" + ",".join(str(i) for i in row if i >= 0) + "}"
                         for row in combos.tolist()], dtype=object)
    return literals[inverse.reshape(-1)].tolist()


def _factorize(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The distinct values as ``str`` (numpy's ``astype(str)``) and each value's index among
    them, in first-seen order (a dict: no sort) when every value is a plain string."""
    items = values.tolist()
    if set(map(type, items)) == {str} and "\x00" not in "".join(items):  # astype(str) is then
        index: dict[str, int] = {}                                       # the identity
        codes = [index.setdefault(v, len(index)) for v in items]
        return list(index), np.array(codes, dtype=np.int64)
    uniq, inverse = np.unique(values.astype(str), return_inverse=True)
    return uniq.tolist(), inverse.reshape(-1)


def join_rows(conn: Connection, event_ids: Iterable[str], terms: Terms) -> list[dict[str, Any]]:
    """The stored predictions of ``event_ids`` with what the label join needs: ``slices``
    (names) and ``attrs`` (a dict), decoded from their ids; one row per event (the earliest,
    should a copy with another ``ts`` have been stored before ids were deduplicated)."""
    rows = conn.execute(text(
        "SELECT DISTINCT ON (event_id) event_id, model, model_version, ts_ms, window_start_ms, "
        "pred, confidence, is_error, slice_ids, attr_ids FROM predictions "
        "WHERE event_id = ANY(:ids) ORDER BY event_id, ts_ms"),
        {"ids": list(event_ids)}).all()
    slices = terms.slices(conn, [r.slice_ids for r in rows])
    attrs = terms.attrs(conn, [r.attr_ids for r in rows])
    out = []
    for r, sl, at in zip(rows, slices, attrs):
        d = r._asdict()
        del d["slice_ids"], d["attr_ids"]
        out.append({**d, "slices": sl, "attrs": at})
    return out


def labelled(conn: Connection, model: str, version: str, from_ms: int, to_ms: int) -> list[Any]:
    """(attrs, wrong) of every labelled successful prediction of a version in ``[from, to)``
    (through ``ix_predictions_model_ts``; labels joined by primary key)."""
    return conn.execute(text(
        "SELECT prediction_attrs(p.attr_ids) AS attrs, p.pred <> l.label AS wrong "
        "FROM predictions p "
        "JOIN labels l ON l.event_id = p.event_id WHERE p.model = :m AND p.model_version = :v "
        "AND p.ts_ms >= :a AND p.ts_ms < :b AND NOT p.is_error"),
        {"m": model, "v": version, "a": from_ms, "b": to_ms}).all()


def labels_joined(conn: Connection) -> dict[tuple[str, str], int]:
    """Stored predictions with a label, per (model, version)."""
    rows = conn.execute(text(
        "SELECT p.model, p.model_version, count(*) AS n FROM labels l "
        "JOIN predictions p USING (event_id) GROUP BY 1, 2")).all()
    return {(r.model, r.model_version): int(r.n) for r in rows}
