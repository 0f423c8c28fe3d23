"""The ``window_states`` table: one detector state per (detector, model, version, slice, window).

Every read of a state goes through :func:`load_states` -- the checkpoint's merge and evaluation,
the version comparisons and the range reports alike -- so one function selects, locks, unpacks
(zlib) and decodes (the detector's ``loads``) states. A checkpoint adds deltas with
:func:`merge_deltas`: new keys are inserted, existing ones locked in key order (two processes
never deadlock) and merged with the detector's associative ``merge``, so the stored state is the
same whatever the checkpoint boundaries or the number of processes.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from monitor.contract import Detector
from monitor.store import copy_binary as cb
from monitor.store.keys import WindowKey

#: Times a named stage (``monitor.core.stages.StageClock``); the default times nothing.
Clock = Callable[[str], AbstractContextManager[None]]
_CHUNK = 64  # states merged/encoded per clock entry (a stopping checkpoint gives up between)
# ``xmin``: the transaction that wrote the row's current version (see :attr:`StoredState.version`)
_COLUMNS = ("SELECT ws.detector, ws.model, ws.model_version, ws.slice, ws.window_start_ms, "
            "ws.state, ws.n_events, CAST(CAST(ws.xmin AS text) AS bigint) FROM window_states ws")
_JOIN_KEYS = (" JOIN unnest(%(kd)b, %(km)b, %(kv)b, %(ks)b, %(kw)b) "
              "AS k(d, m, v, s, w) "
              "ON ws.detector = k.d AND ws.model = k.m AND ws.model_version = k.v "
              "AND ws.slice = k.s AND ws.window_start_ms = k.w")


def pack(data: bytes) -> bytes:
    """A state's bytes as a zlib stream: compressed at level 1, or stored (level 0, the same
    format for :func:`unpack`) when a 1 KiB probe from its middle compresses to more than
    :data:`_STORE_ABOVE` of its size: embedding_drift's float16 sample and ids (~14 KB) shrink
    1.5x for ~7x the CPU of storing them. Only states below :data:`_STORE_MAX` are ever stored as they are."""
    if _PROBE <= len(data) <= _STORE_MAX:
        mid = len(data) // 2
        if len(zlib.compress(data[mid - _PROBE // 2:mid + _PROBE // 2], 1)) > _STORE_ABOVE * _PROBE:
            return zlib.compress(data, 0)
    return zlib.compress(data, 1)


_PROBE = 1024
_STORE_ABOVE = 0.6  # probe ratio from which compression is not worth its CPU
_STORE_MAX = 32 * 1024  # keeps a stored state well inside the 64 KiB per key


def unpack(data: bytes) -> bytes:
    return zlib.decompress(data)


@dataclass
class StoredState:
    """A stored state; decoded on first access of :attr:`state` (evaluation reads each once)."""

    key: WindowKey
    n_events: int
    detector: Detector
    blob: bytes = field(repr=False)
    #: the row version read (PostgreSQL's ``xmin``: any merge, flag change or re-insert since
    #: gives another): a result computed from this state is stale when :func:`lock_versions`
    #: later reads a different one (the pipelined step 6, ``monitor.core.evaluation_pipeline``)
    version: int = 0
    _state: Any = field(default=None, repr=False)

    @property
    def state(self) -> Any:
        if self._state is None:
            self._state = self.detector.loads(unpack(self.blob))
        return self._state

    @property
    def decoded(self) -> bool:
        """True once :attr:`state` was read (else whoever evaluates decodes :attr:`blob`)."""
        return self._state is not None


def load_states(conn: Connection, detectors: Mapping[str, Detector], *,
                keys: Sequence[WindowKey] | None = None, model: str | None = None,
                versions: Sequence[str] | None = None, slice_: str | None = None,
                windows: tuple[int, int] | None = None, dirty_until: int | None = None,
                dirty: bool = False, lock: bool = False) -> list[StoredState]:
    """States of the ``detectors`` (by name) that match every given filter, in key order.

    ``keys``: exactly these keys. ``windows``: window starts in ``[lo, hi)``. ``dirty``: only
    states changed since their last evaluation, and with ``dirty_until`` only windows ending by
    then. ``lock``: ``FOR UPDATE`` (inside a checkpoint). Rows of detectors not in ``detectors``
    (disabled since) are locked like the others but not returned."""
    where = ["ws.detector = ANY(%(dets)s)"] if keys is None else []
    params: dict[str, Any] = {"dets": sorted(detectors)}
    for column, op, name, value in (("model", "=", "m", model),
                                    ("model_version", "= ANY", "vs", versions),
                                    ("slice", "=", "s", slice_),
                                    ("window_start_ms", ">=", "lo", windows and windows[0]),
                                    ("window_start_ms", "<", "hi", windows and windows[1]),
                                    ("window_end_ms", "<=", "h", dirty_until)):
        if value is not None:
            where.append(f"ws.{column} {op}(%({name})s)" if op == "= ANY" else
                         f"ws.{column} {op} %({name})s")
            params[name] = list(value) if op == "= ANY" else value
    if dirty:
        where = [w for w in where if not w.startswith("ws.detector")] + ["ws.dirty"]
    sql = _COLUMNS
    if keys is not None:
        sql += _JOIN_KEYS
        params.update(_key_arrays(keys))
        order = " ORDER BY 1, 2, 3, 4, 5"  # key order: concurrent mergers lock alike
    else:
        order = " ORDER BY ws.detector, ws.model, ws.model_version, ws.window_start_ms, ws.slice"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += order + (" FOR UPDATE OF ws" if lock else "")
    # Results in binary: the states' bytes as they are, not hex for the server to write and
    # the client to parse (SQLAlchemy has no way to ask for binary results).
    with conn.connection.driver_connection.cursor(binary=True) as cur:
        cb.register_arrays(cur.adapters)
        cur.execute(sql, params)
        rows = cur.fetchall()
    out = []
    for detector, model, version, slice_, start, state, n_events, row_version in rows:
        det = detectors.get(detector)
        if det is not None:
            key = WindowKey(detector, model, version, slice_, start)
            out.append(StoredState(key, int(n_events), det, state, int(row_version)))
    return out


def lock_versions(conn: Connection, keys: Sequence[WindowKey]) -> dict[WindowKey, int]:
    """Lock the rows of ``keys`` (``FOR UPDATE``, in key order, as :func:`merge_deltas` does)
    and return their row versions (:attr:`StoredState.version`); a deleted key is absent."""
    if not keys:
        return {}
    rows = _execute(
        conn, "SELECT ws.detector, ws.model, ws.model_version, ws.slice, ws.window_start_ms, "
        "CAST(CAST(ws.xmin AS text) AS bigint) FROM window_states ws" + _JOIN_KEYS
        + " ORDER BY 1, 2, 3, 4, 5 FOR UPDATE OF ws", _key_arrays(keys))
    return {WindowKey(*r[:5]): int(r[5]) for r in rows}


def merge_deltas(conn: Connection, detectors: Mapping[str, Detector],
                 deltas: Mapping[WindowKey, Any], counts: Mapping[WindowKey, int],
                 window_size_ms: int, clock: Clock | None = None) -> None:
    """Merge per-key deltas into the stored states and mark them dirty (not yet evaluated).

    Only the keys in ``deltas`` are read and written, and each state is encoded once: keys that
    exist are locked (in key order: two processes never deadlock), merged and updated; the
    others are inserted with the delta as their state. A key another process inserts between
    the two is merged in a second round (``ON CONFLICT DO NOTHING`` waits for that process to
    commit, so the merge then sees its committed state).

    Every column goes as one binary array built whole (:mod:`monitor.store.copy_binary`'s
    ``text_array``, ``int_array``, ``bytea_array``): as text, an array of a few hundred states
    of ~10 KB is escaped to hex element by element in Python and parsed back by the server
    (~20x the client CPU and ~30x the wall time), and psycopg's binary list dumper still takes
    Python steps per element (0.30 s of a 200k-event ``bench/ingest.py``)."""
    clock = clock or (lambda _stage: nullcontext())
    todo = sorted(deltas, key=WindowKey.as_tuple)
    for _ in range(3):
        if not todo:
            return
        with clock("postgres:window_states"):
            stored = load_states(conn, detectors, keys=todo, lock=True)
        found = {s.key for s in stored}
        _update(conn, stored, deltas, counts, clock)
        todo = _insert(conn, detectors, [k for k in todo if k not in found], deltas, counts,
                       window_size_ms, clock)
    raise RuntimeError(f"window_states: {len(todo)} keys neither insertable nor found")


def _update(conn: Connection, stored: Sequence[StoredState], deltas: Mapping[WindowKey, Any],
            counts: Mapping[WindowKey, int], clock: Clock) -> None:
    if not stored:
        return
    states = []
    for lo in range(0, len(stored), _CHUNK):
        with clock("merge+encode"):
            for s in stored[lo:lo + _CHUNK]:
                det = s.detector
                states.append(pack(det.dumps(det.merge(s.state, deltas[s.key]))))
    with clock("postgres:window_states"):
        params = {**_key_arrays([s.key for s in stored]),
                  "n": cb.int_array([s.n_events + counts[s.key] for s in stored]),
                  "st": cb.bytea_array(states)}
        _execute(conn, "UPDATE window_states ws SET state = u.st, n_events = u.n, dirty = true, "
                 "updated_at = now() FROM unnest(%(kd)b, %(km)b, %(kv)b, %(ks)b, %(kw)b, "
                 "%(n)b, %(st)b) AS u(d, m, v, s, w, n, st) "
                 "WHERE ws.detector = u.d AND ws.model = u.m AND ws.model_version = u.v "
                 "AND ws.slice = u.s AND ws.window_start_ms = u.w", params)


def _insert(conn: Connection, detectors: Mapping[str, Detector], keys: list[WindowKey],
            deltas: Mapping[WindowKey, Any], counts: Mapping[WindowKey, int],
            window_size_ms: int, clock: Clock) -> list[WindowKey]:
    """Insert ``keys`` with their delta as state; return those another process inserted first."""
    if not keys:
        return []
    states = []
    for lo in range(0, len(keys), _CHUNK):
        with clock("encode"):
            states += [pack(detectors[k.detector].dumps(deltas[k])) for k in keys[lo:lo + _CHUNK]]
    with clock("postgres:window_states"):
        starts = [k.window_start_ms for k in keys]
        params = {**_key_arrays(keys),
                  "e": cb.int_array([w + window_size_ms for w in starts]),
                  "dv": cb.int_array(cb.check_int32("detector_version", np.array(
                      [detectors[k.detector].version for k in keys], np.int64)), cb.INT4_OID),
                  "n": cb.int_array([counts[k] for k in keys]), "st": cb.bytea_array(states)}
        inserted = _execute(
            conn, "INSERT INTO window_states (detector, model, model_version, slice, "
            "window_start_ms, window_end_ms, detector_version, n_events, state, dirty) "
            "SELECT *, true FROM unnest(%(kd)b, %(km)b, %(kv)b, %(ks)b, %(kw)b, %(e)b, %(dv)b, "
            "%(n)b, %(st)b) ON CONFLICT DO NOTHING "
            "RETURNING detector, model, model_version, slice, window_start_ms", params)
    fresh = {tuple(r) for r in inserted}
    return [k for k in keys if k.as_tuple() not in fresh]


def _execute(conn: Connection, sql: str, params: dict[str, Any]) -> list[tuple]:
    """Run ``sql`` with :mod:`copy_binary` array parameters; -> the rows it returns."""
    with conn.connection.driver_connection.cursor() as cur:
        cb.register_arrays(cur.adapters)
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def dirty_windows(conn: Connection, until: int | None) -> list[int]:
    """Ends of the windows with states changed since their last evaluation, ending by
    ``until`` (every one when None), oldest first."""
    return [int(e) for (e,) in conn.execute(text(
        "SELECT DISTINCT window_end_ms FROM window_states WHERE dirty "
        "AND (CAST(:h AS bigint) IS NULL OR window_end_ms <= :h) ORDER BY 1"),
        {"h": until}).all()]


def mark_labels_settled(conn: Connection, detectors: Sequence[str], until: int | None) -> None:
    """Mark changed the states of ``detectors`` (label decisions) in windows ending by
    ``until`` (every one when None: a flush that read everything) whose decisive look is still
    to come (no finding of the key says ``labels_settled``): their labels have settled, so
    they get that look even if no label changed them at this moment."""
    conn.execute(text(
        "UPDATE window_states ws SET dirty = true WHERE NOT ws.dirty "
        "AND ws.detector = ANY(CAST(:d AS text[])) "
        "AND (CAST(:hi AS bigint) IS NULL OR ws.window_end_ms <= :hi) "
        "AND NOT EXISTS (SELECT 1 FROM findings f WHERE f.detector = ws.detector "
        "AND f.model = ws.model AND f.model_version = ws.model_version AND f.slice = ws.slice "
        "AND f.window_start_ms = ws.window_start_ms AND f.subject = '' "
        "AND f.details->>'labels_settled' = 'true')"),
        {"d": list(detectors), "hi": until})


def mark_evaluated(conn: Connection, dirty_until: int | None, evaluated: Sequence[WindowKey],
                   detectors: Sequence[str], not_before: int | None = None) -> None:
    """Clear ``dirty`` on the states :func:`load_states` (``dirty=True``) just returned: the
    ``evaluated`` keys, and the locked rows of detectors not in ``detectors`` (disabled).

    By key, not "every dirty row": another process may have inserted or merged a state since
    the rows were locked (it was not dirty then, so not locked); that state keeps its flag and
    is evaluated by the next checkpoint, never silently skipped."""
    _execute(conn,
             "UPDATE window_states ws SET dirty = false WHERE ws.dirty "
             "AND (CAST(%(h)s AS bigint) IS NULL OR ws.window_end_ms <= %(h)s) "
             "AND (CAST(%(lo)s AS bigint) IS NULL OR ws.window_start_ms >= %(lo)s) "
             "AND (ws.detector <> ALL(%(known)b) OR (ws.detector, ws.model, "
             "ws.model_version, ws.slice, ws.window_start_ms) IN (SELECT * FROM unnest("
             "%(kd)b, %(km)b, %(kv)b, %(ks)b, %(kw)b)))",
             {"h": dirty_until, "lo": not_before, "known": cb.text_array(sorted(detectors)),
              **_key_arrays(evaluated)})


def versions_in_window(conn: Connection, detector: str, model: str, window_start_ms: int,
                       besides: str) -> list[str]:
    """The model's versions (other than ``besides``) with a state of ``detector`` in the window."""
    return [v for (v,) in conn.execute(text(
        "SELECT DISTINCT model_version FROM window_states WHERE detector = :d AND model = :m "
        "AND window_start_ms = :w AND model_version <> :b ORDER BY 1"),
        {"d": detector, "m": model, "w": window_start_ms, "b": besides}).all()]


def slices_in_windows(conn: Connection, windows: Sequence[tuple[str, str, str, int]]
                      ) -> dict[tuple[str, str, str, int], int]:
    """Slices with a stored state per (detector, model, version, window start), dirty or not:
    the family a window's slices share ``alpha`` over (``EvalContext.n_tests``)."""
    if not windows:
        return {}
    rows = conn.execute(text(
        "SELECT ws.detector, ws.model, ws.model_version, ws.window_start_ms, count(*) AS n "
        "FROM window_states ws JOIN unnest(CAST(:kd AS text[]), CAST(:km AS text[]), "
        "CAST(:kv AS text[]), CAST(:kw AS bigint[])) AS k(d, m, v, w) ON ws.detector = k.d "
        "AND ws.model = k.m AND ws.model_version = k.v AND ws.window_start_ms = k.w "
        "GROUP BY 1, 2, 3, 4"),
        {"kd": [w[0] for w in windows], "km": [w[1] for w in windows],
         "kv": [w[2] for w in windows], "kw": [w[3] for w in windows]}).all()
    return {(r[0], r[1], r[2], int(r[3])): int(r.n) for r in rows}


def _key_arrays(keys: Sequence[WindowKey]) -> dict[str, cb.ArrayParam]:
    """Each key column as one binary array (``%(kd)b``...): no Python step per element."""
    return {"kd": cb.text_array([k.detector for k in keys]),
            "km": cb.text_array([k.model for k in keys]),
            "kv": cb.text_array([k.model_version for k in keys]),
            "ks": cb.text_array([k.slice for k in keys]),
            "kw": cb.int_array([k.window_start_ms for k in keys])}


def delete_before(conn: Connection, cutoff_ms: int, batch_size: int) -> int:
    """Delete up to ``batch_size`` evaluated states of windows that ended before ``cutoff_ms``
    (event time, through ``ix_window_states_end``; a state still to evaluate stays); return
    how many."""
    return conn.execute(text(
        "DELETE FROM window_states WHERE ctid = ANY(ARRAY(SELECT ctid FROM window_states "
        "WHERE window_end_ms < :c AND NOT dirty LIMIT :b))"),
        {"c": cutoff_ms, "b": batch_size}).rowcount
