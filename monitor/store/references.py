"""The ``reference_profiles`` table: store, list, show, activate, and the cached lookup the
checkpoint uses when it observes and evaluates a window.

A version without an active reference falls back to the active reference of the model's
configured baseline version (``models.<name>.baseline_version``); with neither, detectors that
need one report ``no_reference``, never ``ok``.

A profile is stored as :func:`monitor.codec.pack_value` writes it (arrays raw, exact float32
samples as float16): a 26-slice, 768-d reference loads several times faster than from the
zlib-compressed JSON of earlier versions, which :func:`decode_profile` still reads.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import Connection, text
from sqlalchemy.exc import NoResultFound

from monitor.codec import PACKED, pack_value, unpack_value
from monitor.contract import Reference, decode_value


def store(conn: Connection, model: str, version: str, profile: Mapping[str, Any], source: str,
          n_events: int, summary: Mapping[str, Any], activate: bool = True) -> int:
    if activate:
        conn.execute(text("UPDATE reference_profiles SET active = false WHERE model = :m "
                          "AND model_version = :v AND active"), {"m": model, "v": version})
    return conn.execute(text(
        "INSERT INTO reference_profiles (model, model_version, source, n_events, profile, "
        "summary, active) VALUES (:m, :v, :src, :n, :p, CAST(:s AS jsonb), :a) RETURNING id"),
        {"m": model, "v": version, "src": source, "n": n_events,
         "p": pack_value(dict(profile)),
         "s": orjson.dumps(summary, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
         "a": activate}).scalar_one()


def activate(conn: Connection, reference_id: int) -> None:
    row = conn.execute(text("SELECT model, model_version FROM reference_profiles WHERE id = :i"),
                       {"i": reference_id}).one_or_none()
    if row is None:
        raise KeyError(reference_id)
    conn.execute(text("UPDATE reference_profiles SET active = (id = :i) WHERE model = :m "
                      "AND model_version = :v"), {"i": reference_id, "m": row.model,
                                                    "v": row.model_version})


def list_all(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(text(
        "SELECT id, model, model_version, source, n_events, active, created_at, summary "
        "FROM reference_profiles ORDER BY model, model_version, id")).all()
    return [{**r._asdict(), "created_at": r.created_at.isoformat()} for r in rows]


def show(conn: Connection, reference_id: int) -> dict[str, Any] | None:
    """One reference's metadata and summary (not its profile); None if there is none."""
    row = conn.execute(text("SELECT id, model, model_version, source, n_events, active, "
                            "created_at, summary FROM reference_profiles WHERE id = :i"),
                       {"i": reference_id}).one_or_none()
    return None if row is None else row._asdict()


#: A stored reference row as of one read: its id and its row version (``xmin``, which every
#: ``UPDATE`` of the row -- activation, a slice warm-up -- changes).
Stamp = tuple[int, str]


def load(conn: Connection, reference_id: int) -> Reference:
    return _load(conn, reference_id)[0]


def _load(conn: Connection, reference_id: int) -> tuple[Reference, Stamp]:
    row = _row(conn, reference_id)
    if row is None:
        raise NoResultFound(f"no reference profile {reference_id}")
    id_, model, version, profile, xmin = row
    return Reference(model, version, id_, decode_profile(profile)), (id_, xmin)


def _row(conn: Connection, reference_id: int, lock: bool = False) -> tuple[Any, ...] | None:
    """(id, model, version, stored profile, xmin), read in binary: as text, tens of MB of
    bytea are twice as many bytes of hex for the server to write and the client to parse."""
    with conn.connection.driver_connection.cursor(binary=True) as cur:
        cur.execute("SELECT id, model, model_version, profile, xmin::text FROM reference_profiles "
                    "WHERE id = %s" + (" FOR UPDATE" if lock else ""), (reference_id,))
        return cur.fetchone()


def decode_profile(stored: bytes) -> dict[str, Any]:
    """A stored profile: packed, or zlib-compressed JSON (written before packing)."""
    if stored.startswith(PACKED):
        return unpack_value(stored)
    return decode_value(zlib.decompress(stored))


def _active_stamp(conn: Connection, model: str, version: str) -> Stamp | None:
    r = conn.execute(text("SELECT id, xmin::text AS xmin FROM reference_profiles WHERE model = :m "
                          "AND model_version = :v AND active"), {"m": model, "v": version}
                     ).one_or_none()
    return (r.id, r.xmin) if r else None


def active(conn: Connection, model: str, version: str) -> Reference | None:
    stamp = _active_stamp(conn, model, version)
    return load(conn, stamp[0]) if stamp else None


def add_slice_profile(conn: Connection, reference_id: int, slice_name: str,
                      entry: Mapping[str, Any]) -> Reference | None:
    """Add ``entry``'s keys to the sub-profile ``slices.<slice_name>`` of reference
    ``reference_id``, in place (same id: what was built on the reference stays valid), unless
    the slice already has them. Locks the row, so concurrent warm-ups of other slices are not
    lost. Returns the updated reference, or None when nothing was added."""
    row = _row(conn, reference_id, lock=True)
    if row is None:
        return None
    id_, model, version, stored, _ = row
    profile = dict(decode_profile(stored))
    slices = dict(profile.get("slices") or {})
    own = dict(slices.get(slice_name) or {})
    if set(entry) - {"n_events"} <= set(own):
        return None
    own.update({k: v for k, v in entry.items() if k not in own})
    slices[slice_name] = own
    profile["slices"] = slices
    conn.execute(text("UPDATE reference_profiles SET profile = :p WHERE id = :i"),
                 {"p": pack_value(profile), "i": reference_id})
    return Reference(model, version, id_, profile)


class CachedReferenceLookup:
    """Active reference per (model, version), falling back to the baseline version's.
    Cached per process; ``vitmon reference activate`` takes effect on restart or after
    ``ttl_checkpoints`` checkpoints.

    An expired entry is re-validated with one small query per version (the active rows' ids
    and row versions, not their profiles): when nothing changed it is kept, the very same
    :class:`Reference` object, so what detectors derived from its profile (``detectors._memo``)
    stays warm; otherwise the new active profile is loaded."""

    def __init__(self, baselines: Mapping[str, str | None], ttl_checkpoints: int = 30) -> None:
        self.baselines = dict(baselines)
        self.ttl = ttl_checkpoints
        self._cache: dict[tuple[str, str], tuple[int, Reference | None, list[Stamp | None]]] = {}
        self._tick = 0

    def tick(self) -> None:
        self._tick += 1

    def forget(self, model: str, version: str) -> None:
        """Drop cached entries that may hold ``(model, version)``'s reference (it changed)."""
        for key in [k for k, (_, ref, _) in self._cache.items()
                    if k == (model, version) or (ref is not None and
                                                 (ref.model, ref.model_version) == (model, version))]:
            del self._cache[key]

    def __call__(self, conn: Connection, model: str, version: str) -> Reference | None:
        hit = self._cache.get((model, version))
        if hit is not None and self._tick - hit[0] < self.ttl:
            return hit[1]
        stamps = self._stamps(conn, model, version)
        if hit is not None and hit[2] == stamps:
            ref = hit[1]  # unchanged: the same object
        elif stamps[-1] is None:
            ref = None
        else:
            ref, stamps[-1] = _load(conn, stamps[-1][0])  # the row as loaded
        self._cache[(model, version)] = (self._tick, ref, stamps)
        return ref

    def _stamps(self, conn: Connection, model: str, version: str) -> list[Stamp | None]:
        """The version's active row, then (when it has none) the baseline version's: the last
        one is the reference to use."""
        stamps = [_active_stamp(conn, model, version)]
        baseline = self.baselines.get(model)
        if stamps[0] is None and baseline and baseline != version:
            stamps.append(_active_stamp(conn, model, baseline))
        return stamps
