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


def _same(a, b):
    """Equal values of the same types; arrays of the same dtype, shape and bytes."""
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
                and a.tobytes() == b.tobytes() and b.flags.writeable)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and (a == b or (a != a and b != b))


def _profile():
    rng = np.random.default_rng(3)
    f16 = rng.normal(size=(40, 8)).astype(np.float16)
    odd = np.array([np.nan, -0.0, np.inf, 1e-40, 70000.0, 0.1], np.float32)  # not all f16
    return {"schema": 1, "n": 2.5, "nan": float("nan"), "ids": np.array(["a", "bcd"]),
            "embedding": {"sample": f16.astype(np.float32), "wide": f16.astype(np.float64),
                          "odd": odd, "pca": rng.normal(size=(8, 3)),
                          "empty": np.zeros((0, 8), np.float32), "big": np.arange(3, dtype=">i8")},
            "slices": {"cam=a": {"counts": np.arange(5), "names": ("x", "y")}},
            (1, 2): [1, 2]}


def test_a_profile_reads_back_exactly_packed_and_from_the_older_zlib_format(migrated_engine):
    import zlib

    from monitor.codec import PACKED, encode_value
    profile = _profile()
    expected = references.decode_profile(zlib.compress(encode_value(profile), 1))  # as before
    with migrated_engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM reference_profiles")
        new = references.store(conn, "m", "1", profile, "test", 1, {})
        legacy = references.store(conn, "m", "1", {"x": np.array([0.0])}, "test", 1, {},
                                  activate=False)
        conn.exec_driver_sql("UPDATE reference_profiles SET profile = %(p)s WHERE id = %(i)s",
                             {"p": zlib.compress(encode_value(profile), 1), "i": legacy})
        stored = conn.exec_driver_sql(f"SELECT profile FROM reference_profiles WHERE id = {new}"
                                      ).scalar_one()
    assert bytes(stored).startswith(PACKED)
    stored = bytes(stored)  # float arrays exactly float16 are stored as such, others as they are
    assert b'["<f4",[40,8],"<f2"' in stored and b'["<f8",[40,8],"<f2"' in stored
    assert b'["<f8",[8,3],"<f8"' in stored and b'["<f4",[6],"<f4"' in stored
    with migrated_engine.begin() as conn:
        for ref_id in (new, legacy):
            ref = references.load(conn, ref_id)
            assert ref.reference_id == ref_id and _same(expected, ref.profile)
        # a slice warm-up of a legacy row rewrites it packed, keeping what was there
        references.add_slice_profile(conn, legacy, "cam=b", {"y": np.array([3.0])})
        ref = references.load(conn, legacy)
    assert ref.profile["slices"]["cam=b"]["y"].tolist() == [3.0]
    assert _same(expected["embedding"], ref.profile["embedding"])
