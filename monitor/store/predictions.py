"""The ``predictions`` table: accepted predictions, kept for the label join until the label
horizon passes. Compact: attributes and slices are ``int[]`` of :mod:`monitor.store.terms` ids,
not JSONB and text. Partitioned by event time (one partition per UTC day, created on demand), so
retention is a ``DROP`` of old partitions (:func:`drop_partitions_before`), never a long DELETE.
An ``event_id`` is stored once: a re-sent event is a duplicate whether it carries its
original ``ts`` (the primary key ``(event_id, ts_ms)``) or a new one within :data:`RESEND_MS`
(:func:`insert_new` looks the ids up first, in the day partitions that can hold such a copy),
across restarts and processes. Two copies with different ``ts`` checkpointed by two processes
at the same moment would both be stored; producers key by ``event_id``, so copies share a
partition and one process reads both."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
from psycopg.copy import LibpqWriter
from psycopg.errors import UniqueViolation
from sqlalchemy import Connection, text

from monitor.contract import Batch
from monitor.store import copy_binary as cb
from monitor.store import locks
from monitor.store.terms import Terms

DAY_MS = 86_400_000
#: A re-sent event is found (counted once) when its ``ts`` is within this of a stored copy's:
#: producers re-send an event with its own ``ts``, or a new one seconds later.
RESEND_MS = DAY_MS
#: The COPY's column order (the statement names them, so any order serves): the fixed-width
#: ones first, then event_id, then those whose values repeat across rows (see _copy_binary).
_COLUMNS = ("ts_ms, window_start_ms, pred, is_error, latency_ms, kafka_partition, kafka_offset, "
            "confidence, event_id, model, model_version, slice_ids, attr_ids, input_sha256, "
            "sample_uri")
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
    """Store the rows of ``batch`` whose ``event_id`` is not stored yet (with a ``ts`` within
    :data:`RESEND_MS` of theirs) and return a mask of the rows stored. ``slice_names``: per
    slice dimension, each event's slice name (every event is also in ``all``);
    ``batch.extras`` carries ``_partition`` and ``_offset``. Call :func:`ensure_partitions`
    first. Event ids must be distinct within ``batch``."""
    return insert_unstored(conn, batch, window_starts, slice_names, terms,
                           not_stored(conn, batch))


def not_stored(conn: Connection, batch: Batch) -> np.ndarray:
    """A mask of the rows whose ``event_id`` no stored prediction within :data:`RESEND_MS` of
    the batch's event times has: the probe reads only the day partitions that can hold one
    (through their primary keys, or a scan when the batch is large against the partition)."""
    if len(batch) == 0:
        return np.zeros(0, dtype=bool)
    with conn.connection.dbapi_connection.cursor() as cur:
        return _not_stored(cur, batch)


def insert_unstored(conn: Connection, batch: Batch, window_starts: np.ndarray,
                    slice_names: Sequence[np.ndarray], terms: Terms,
                    keep: np.ndarray) -> np.ndarray:
    """:func:`insert_new` after its probe: store the rows :func:`not_stored` found new
    (``keep``), and return the mask of the rows stored: ``keep``, unless another transaction
    stored some of them since the probe (those are skipped)."""
    if not keep.any():
        return keep
    keep = keep.copy()
    if not keep.all():
        idx = np.flatnonzero(keep)
        batch, window_starts = batch.take(idx), window_starts[idx]
        slice_names = [names[idx] for names in slice_names]
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        data = _copy_binary(conn, batch, window_starts, slice_names, terms,
                            _time_order(batch.ts_ms))
        # Straight into the table: no staging table, no ON CONFLICT (a speculative insertion
        # and an extra WAL record per row), nothing returned. Only a copy being stored by
        # another transaction at this moment (same id and ts) makes it fail: then, from the
        # savepoint, the slow path waits for that transaction and skips what it stored.
        cur.execute("SAVEPOINT predictions_copy")
        try:
            # One flush at the end, not one per MiB: each wait on the socket hands the GIL to
            # the polling thread, and taking it back costs up to the 5 ms switch interval
            # (bench/predictions_copy.py --busy: 31 -> 21 us/row); libpq holds the batch.
            with cur.copy(f"COPY predictions ({_COLUMNS}) FROM STDIN (FORMAT BINARY)",
                          writer=LibpqWriter(cur, flush_threshold=len(data) + 1)) as copy:
                copy.write(data)
        except UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT predictions_copy")
            inserted = _insert_on_conflict(cur, data)
            keep[keep] = np.fromiter((e in inserted for e in batch.event_id), dtype=bool,
                                     count=len(batch))
        cur.execute("RELEASE SAVEPOINT predictions_copy")
    return keep


def _not_stored(cur: Any, batch: Batch) -> np.ndarray:
    ids = batch.event_id.tolist()
    cur.execute("SELECT DISTINCT event_id FROM predictions WHERE event_id = ANY(%s::text[]) "
                "AND ts_ms >= %s AND ts_ms <= %s",
                (_array_literal(ids), int(batch.ts_ms.min()) - RESEND_MS,
                 int(batch.ts_ms.max()) + RESEND_MS))
    stored = {r[0] for r in cur.fetchall()}
    if not stored:
        return np.ones(len(ids), dtype=bool)
    return np.fromiter((e not in stored for e in ids), dtype=bool, count=len(ids))


def _array_literal(values: list[str]) -> str:
    """``values`` as one text[] literal, every element quoted (psycopg's list dumper matches a
    regex per element: ~2 us a row); backslash and double quote escaped when present."""
    joined = "".join(values)
    if "\\" in joined or '"' in joined:
        values = [v.replace("\\", "\\\\").replace('"', '\\"') for v in values]
    return '{"' + '","'.join(values) + '"}'


def _insert_on_conflict(cur: Any, data: bytes) -> set[str]:
    """``data`` (binary COPY) through a staging table, skipping ids stored meanwhile (any
    ``ts`` within the window of the staged rows); -> the event ids inserted."""
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS tmp_predictions "
                "(LIKE predictions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    cur.execute("TRUNCATE tmp_predictions")
    with cur.copy(f"COPY tmp_predictions ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(data)
    cur.execute(f"INSERT INTO predictions ({_COLUMNS}) SELECT {_COLUMNS} "
                "FROM tmp_predictions t WHERE NOT EXISTS (SELECT 1 FROM predictions p "
                "WHERE p.event_id = t.event_id AND p.ts_ms BETWEEN t.ts_ms - %s "
                "AND t.ts_ms + %s) ON CONFLICT (event_id, ts_ms) DO NOTHING RETURNING event_id",
                (RESEND_MS, RESEND_MS))
    return {r[0] for r in cur.fetchall()}


def _time_order(ts_ms: np.ndarray) -> np.ndarray | None:
    """The rows in event-time order, None when they are in it: a batch holds each Kafka
    partition's run of rows in turn, and in that order the ``(model, model_version, ts_ms)``
    index took inserts in its middle (half-full pages: 53 against 40 B a row for four such
    50,000-row batches); in time order they append to its right end."""
    if len(ts_ms) < 2 or bool((ts_ms[1:] >= ts_ms[:-1]).all()):
        return None
    return np.argsort(ts_ms, kind="stable")


def _copy_binary(conn: Connection, batch: Batch, window_starts: np.ndarray,
                 slice_names: Sequence[np.ndarray], terms: Terms,
                 order: np.ndarray | None = None) -> bytes:
    """The rows of ``batch`` (in ``order``, if given) as binary COPY (the columns of
    :data:`_COLUMNS`) built from numpy columns (:mod:`monitor.store.copy_binary`): per row, its
    fixed-width fields, its event id, and the bytes of its (model, version, slice ids, attribute
    ids), formatted once per distinct combination. COPY text took ``repr``/``str`` and a join
    per value (~3 us a row; psycopg's per-value dumpers ~25 us)."""
    n = len(batch)
    none = np.full(n, None, dtype=object)
    c = {"event_id": batch.event_id, "ts_ms": batch.ts_ms, "model": batch.model,
         "model_version": batch.model_version, "window_start_ms": window_starts,
         "pred": batch.pred, "confidence": batch.confidence, "is_error": batch.is_error,
         "latency_ms": batch.latency_ms, "input_sha256": batch.extras.get("input_sha256", none),
         "sample_uri": batch.extras.get("sample_uri", none),
         "kafka_partition": batch.extras["_partition"], "kafka_offset": batch.extras["_offset"]}
    attrs = sorted(batch.attrs.items())
    if order is not None:
        c = {k: v[order] for k, v in c.items()}
        attrs = [(k, v[order]) for k, v in attrs]
        slice_names = [names[order] for names in slice_names]
    ids, id_lengths = cb.text_pieces(c["event_id"].tolist())
    confidence = np.asarray(c["confidence"])
    fixed = cb.fixed_pieces(len(_COLUMNS.split(",")), [
        (c["ts_ms"], ">i8", None), (c["window_start_ms"], ">i8", None),
        (cb.check_int32("pred", np.asarray(c["pred"])), ">i4", None),
        (c["is_error"], "?", None), (c["latency_ms"], ">f4", None),
        (cb.check_int32("kafka_partition", np.asarray(c["kafka_partition"])), ">i4", None),
        (c["kafka_offset"], ">i8", None), (confidence, ">f4", np.isnan(confidence))],
        trailing_length=id_lengths)
    shared, which = _shared_fields(conn, terms, c["model"], c["model_version"],
                                   slice_names, attrs, n)
    pieces, tail = [fixed, ids], b""
    for column in (c["input_sha256"], c["sample_uri"]):
        values = column.tolist()
        if values.count(None) == n and len(pieces) == 2:
            tail += cb.NULL  # rides on the shared piece
            continue
        data, lengths = cb.text_pieces(values)
        pieces += [cb.length_words(lengths), data]
    pieces.insert(2, np.array([s + tail for s in shared], dtype=object)[which].tolist())
    return cb.join_rows(pieces)


def _shared_fields(conn: Connection, terms: Terms, model: np.ndarray, version: np.ndarray,
                   slice_names: Sequence[np.ndarray], attrs: Sequence[tuple[str, np.ndarray]],
                   n: int) -> tuple[list[bytes], np.ndarray]:
    """The fields model, model_version, slice_ids and attr_ids of each distinct combination
    of them among the ``n`` rows, and each row's combination. Slice ids: ``all``, then the term
    of each non-None slice name; attribute ids: the term ``key=str(value)`` of each non-None
    value; ids are looked up per column and distinct value. One dict pass over the rows' tuples
    of values (a few hundred combinations in a batch of thousands of rows; a pass per column
    cost as much again per column, ``np.unique`` of 50,000 strings ~7 us a row)."""
    columns = [model.tolist(), version.tolist(), *(names.tolist() for names in slice_names),
               *(values.tolist() for _, values in attrs)]
    index: dict[tuple, int] = {}
    try:
        codes = [index.setdefault(t, len(index)) for t in zip(*columns, strict=True)]
        mixed = {j for t in index for j, v in enumerate(t) if type(v) is not str and v is not None}
    except TypeError:  # an unhashable value
        mixed = set(range(len(columns)))
    if mixed:  # those columns as str: 1, 1.0 and "1" are then told apart (as keys 1 == 1.0)
        columns = [[v if v is None or type(v) is str else str(v) for v in col]
                   if j in mixed else col for j, col in enumerate(columns)]
        index = {}
        codes = [index.setdefault(t, len(index)) for t in zip(*columns, strict=True)]
    combos = list(index)
    found = [terms.ids(conn, ["all"])]
    prefixes = [""] * len(slice_names) + [f"{k}=" for k, _ in attrs]
    for j, prefix in enumerate(prefixes, start=2):  # in column order, as ids were assigned
        distinct = {t[j] for t in combos} - {None}
        found.append(terms.ids(conn, [prefix + v for v in distinct]) if distinct else {})
    everyone, n_slices = found[0]["all"], len(slice_names)
    shared = []
    for t in combos:
        ids = [found[j - 1][prefixes[j - 2] + t[j]] if t[j] is not None else -1
               for j in range(2, len(t))]
        shared.append(cb.text_field(t[0]) + cb.text_field(t[1])
                      + cb.int4_array_field([everyone, *(i for i in ids[:n_slices] if i >= 0)])
                      + cb.int4_array_field([i for i in ids[n_slices:] if i >= 0]))
    return shared, np.array(codes, dtype=np.intp)


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
