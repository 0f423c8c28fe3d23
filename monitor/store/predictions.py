"""The ``predictions`` table: accepted predictions, kept for the label join until the label
horizon passes. The primary key on ``event_id`` makes a duplicate count once, across restarts
and processes; rows are pruned in small batches by event time (``ix_predictions_ts``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Connection, text

from monitor.contract import Batch

_COLUMNS = ("event_id, ts_ms, model, model_version, window_start_ms, pred, confidence, "
            "is_error, latency_ms, slices, attrs, input_sha256, sample_uri, "
            "kafka_partition, kafka_offset")
_DELETE = text(
    "DELETE FROM predictions WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM predictions WHERE ts_ms < :cutoff LIMIT :batch))")


def insert_new(conn: Connection, batch: Batch, window_starts: np.ndarray,
               slices: np.ndarray) -> np.ndarray:
    """COPY ``batch`` into a temp table, insert the rows whose ``event_id`` is new, and return a
    mask of the rows inserted. ``slices``: each event's slice names, joined (for the label join);
    ``batch.extras`` carries ``_partition`` and ``_offset``."""
    n = len(batch)
    if n == 0:
        return np.zeros(0, dtype=bool)
    none = np.full(n, None, dtype=object)
    sha = batch.extras.get("input_sha256", none)
    uri = batch.extras.get("sample_uri", none)
    part, off = batch.extras["_partition"], batch.extras["_offset"]
    conf = batch.confidence.astype(np.float64)
    conf_col = np.where(np.isnan(conf), None, conf).tolist()
    rows = zip(batch.event_id.tolist(), batch.ts_ms.tolist(), batch.model.tolist(),
               batch.model_version.tolist(), window_starts.tolist(), batch.pred.tolist(),
               conf_col, batch.is_error.tolist(), batch.latency_ms.tolist(), slices.tolist(),
               _attrs_json(batch), sha.tolist(), uri.tolist(), part.tolist(), off.tolist())
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS tmp_predictions "
                    "(LIKE predictions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        with cur.copy(f"COPY tmp_predictions ({_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(f"INSERT INTO predictions ({_COLUMNS}) SELECT {_COLUMNS} "
                    "FROM tmp_predictions ON CONFLICT (event_id) DO NOTHING RETURNING event_id")
        inserted = {r[0] for r in cur.fetchall()}
    return np.fromiter((e in inserted for e in batch.event_id), dtype=bool, count=n)


def join_rows(conn: Connection, event_ids: Iterable[str]) -> list[Any]:
    """The stored predictions of ``event_ids`` with what the label join needs (slices, attrs)."""
    return conn.execute(text(
        "SELECT event_id, model, model_version, ts_ms, window_start_ms, pred, confidence, "
        "is_error, slices, attrs FROM predictions WHERE event_id = ANY(:ids)"),
        {"ids": list(event_ids)}).all()


def delete_before(conn: Connection, cutoff_ms: int, batch_size: int) -> int:
    """Delete up to ``batch_size`` predictions with ``ts_ms < cutoff_ms``; return how many
    (rows found through the ``ts_ms`` index and addressed by ``ctid``: no scan, no long lock)."""
    return conn.execute(_DELETE, {"cutoff": cutoff_ms, "batch": batch_size}).rowcount


def labelled(conn: Connection, model: str, version: str, from_ms: int, to_ms: int) -> list[Any]:
    """(attrs, wrong) of every labelled successful prediction of a version in ``[from, to)``
    (through ``ix_predictions_model_ts``; labels joined by primary key)."""
    return conn.execute(text(
        "SELECT p.attrs, p.pred <> l.label AS wrong FROM predictions p "
        "JOIN labels l ON l.event_id = p.event_id WHERE p.model = :m AND p.model_version = :v "
        "AND p.ts_ms >= :a AND p.ts_ms < :b AND NOT p.is_error"),
        {"m": model, "v": version, "a": from_ms, "b": to_ms}).all()


def labels_joined(conn: Connection) -> dict[tuple[str, str], int]:
    """Stored predictions with a label, per (model, version)."""
    rows = conn.execute(text(
        "SELECT p.model, p.model_version, count(*) AS n FROM labels l "
        "JOIN predictions p USING (event_id) GROUP BY 1, 2")).all()
    return {(r.model, r.model_version): int(r.n) for r in rows}


def _attrs_json(batch: Batch) -> list[str | None]:
    if not batch.attrs:
        return [None] * len(batch)
    names = list(batch.attrs)
    cols = [batch.attrs[k].tolist() for k in names]
    return [orjson.dumps({k: v for k, v in zip(names, vals) if v is not None}).decode()
            for vals in zip(*cols)]
