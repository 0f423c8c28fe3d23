"""The service's cached reference lookup: an activation or an in-place rewrite (a slice
warm-up by another process) is seen once the entry expires; an unchanged reference is kept
as the very same object, so what detectors memoised on its profile stays valid."""

import numpy as np

from monitor.store import references
from monitor.store.references import CachedReferenceLookup


def _store(conn, version, value, activate=True):
    return references.store(conn, "m", version, {"x": np.array([value])}, "test", 1, {},
                            activate=activate)


def _expire(lookup):
    for _ in range(lookup.ttl):
        lookup.tick()


def test_an_unchanged_reference_survives_expiry_as_the_same_object(migrated_engine):
    lookup = CachedReferenceLookup({"m": None}, ttl_checkpoints=2)
    with migrated_engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM reference_profiles")
        ref_id = _store(conn, "1", 1.0)
    with migrated_engine.begin() as conn:
        first = lookup(conn, "m", "1")
        assert first.reference_id == ref_id and first.profile["x"].tolist() == [1.0]
        _expire(lookup)
        assert lookup(conn, "m", "1") is first
        assert lookup(conn, "m", "2") is None


def test_activation_and_in_place_rewrites_are_seen_after_expiry(migrated_engine):
    lookup = CachedReferenceLookup({"m": "1"}, ttl_checkpoints=2)
    with migrated_engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM reference_profiles")
        old = _store(conn, "1", 1.0)
        new = _store(conn, "1", 2.0, activate=False)
    with migrated_engine.begin() as conn:
        first = lookup(conn, "m", "1")
        via_baseline = lookup(conn, "m", "2")
        assert first.reference_id == old == via_baseline.reference_id
        references.activate(conn, new)
    with migrated_engine.begin() as conn:
        lookup.tick()
        assert lookup(conn, "m", "1") is first  # within the ttl: cached
        lookup.tick()
        second = lookup(conn, "m", "1")
        assert second.reference_id == new and second.profile["x"].tolist() == [2.0]
        assert lookup(conn, "m", "2").reference_id == new
        # another process warms a slice up: same id, new profile
        references.add_slice_profile(conn, new, "cam=a", {"y": np.array([3.0])})
    with migrated_engine.begin() as conn:
        _expire(lookup)
        third = lookup(conn, "m", "1")
        assert third is not second and third.reference_id == new
        assert third.profile["slices"]["cam=a"]["y"].tolist() == [3.0]
        own = _store(conn, "2", 4.0)  # version 2 gets its own: no longer the baseline's
    with migrated_engine.begin() as conn:
        _expire(lookup)
        assert lookup(conn, "m", "2").reference_id == own
        assert lookup(conn, "m", "1") is third
        conn.exec_driver_sql("UPDATE reference_profiles SET active = false")
    with migrated_engine.begin() as conn:
        _expire(lookup)
        assert lookup(conn, "m", "1") is None and lookup(conn, "m", "2") is None
