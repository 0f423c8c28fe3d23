"""The predictions COPY (monitor.store.predictions.insert_new) builds binary COPY itself: every
value must come back as it went in (as a plain INSERT stores it), whatever characters an event
id or URI holds and at the limits of each column's type, and a duplicate must be reported as
not inserted, also when it is found only by the savepoint fallback."""

from __future__ import annotations

import hashlib
import threading
import time
import zlib
from dataclasses import replace

import numpy as np
import pytest
from sqlalchemy import text

from monitor.core.windows import window_start
from monitor.store import predictions
from monitor.store.terms import Terms
from monitor.testing import synthetic_batch

pytestmark = pytest.mark.integration

ODD = ["tab\there", "new\nline", "back\\slash", "\\N", "cr\r", "quote'\"{},", "ünï\u2028"]


def _batch():
    b = synthetic_batch(n=len(ODD) + 3, seed=5, error_rate=0.3)
    ids = np.array(ODD + ["plain-1", "plain-2", "plain-3"], dtype=object)
    uris = b.extras["sample_uri"].copy()
    uris[0], uris[1] = None, "file:///x\ty\\z"
    sha = np.array([None, "ab\\cd", *(["f" * 64] * (len(ids) - 2))], dtype=object)
    cams = b.attrs["camera_id"].copy()
    cams[2] = None
    n = len(ids)
    return replace(b, event_id=ids, attrs={"camera_id": cams},
                   extras={**b.extras, "sample_uri": uris, "input_sha256": sha,
                           "_partition": np.arange(n, dtype=np.int64) % 3,
                           "_offset": np.arange(n, dtype=np.int64) + 10})


def test_copy_round_trips_every_value_and_reports_duplicates(migrated_engine):
    batch = _batch()
    terms = Terms()
    starts = window_start(batch.ts_ms, 300_000)
    labels = [np.array([f"camera_id={c}" for c in batch.attrs["camera_id"]], dtype=object)]
    with migrated_engine.begin() as conn:
        terms.begin()
        predictions.ensure_partitions(conn, [batch.ts_ms])
        keep = predictions.insert_new(conn, batch, starts, labels, terms)
        assert keep.all()
        again = batch.take(np.array([0, 3, 4]))
        again = replace(again, event_id=np.array([ODD[0], ODD[3], "fresh"], dtype=object))
        keep2 = predictions.insert_new(conn, again, window_start(again.ts_ms, 300_000),
                                       [lab[[0, 3, 4]] for lab in labels], terms)
        assert keep2.tolist() == [False, False, True]
        rows = {r.event_id: r for r in conn.execute(text(
            "SELECT event_id, ts_ms, model, model_version, window_start_ms, pred, confidence, "
            "is_error, latency_ms, input_sha256, sample_uri, kafka_partition, kafka_offset, "
            "prediction_attrs(attr_ids) AS attrs, prediction_slices(slice_ids) AS slices "
            "FROM predictions")).all()}
    terms.committed()
    assert set(rows) == {*batch.event_id.tolist(), "fresh"}
    for i, eid in enumerate(batch.event_id.tolist()):
        r = rows[eid]
        assert (r.ts_ms, r.model, r.model_version, r.window_start_ms, r.pred) == (
            int(batch.ts_ms[i]), "m", "1", int(starts[i]), int(batch.pred[i]))
        conf = float(batch.confidence[i])  # real columns: float32 precision
        assert (r.confidence is None) if np.isnan(conf) else np.float32(r.confidence) == conf
        assert r.is_error == bool(batch.is_error[i])
        assert np.float32(r.latency_ms) == np.float32(batch.latency_ms[i])
        assert r.input_sha256 == batch.extras["input_sha256"][i]
        assert r.sample_uri == batch.extras["sample_uri"][i]
        assert (r.kafka_partition, r.kafka_offset) == (i % 3, i + 10)
        cam = batch.attrs["camera_id"][i]
        assert dict(r.attrs or {}) == ({} if cam is None else {"camera_id": cam})
        assert "all" in list(r.slices)


def test_term_ids_of_mixed_and_missing_values_round_trip(migrated_engine):
    """Attribute and slice values that are None, numbers, or strings equal to a number's text
    ("1" and 1) are stored as the terms of their ``str`` (None: no term)."""
    b = synthetic_batch(n=12, seed=7)
    mixed = np.array([None, 1, "1", 2.5, "eu", None, "eu", 1.0, "x", "ü", 7, "7"], dtype=object)
    other = np.array(["a", None] * 6, dtype=object)
    batch = replace(b, attrs={"mixed": mixed, "other": other},
                    extras={**b.extras, "_partition": np.zeros(12, dtype=np.int64),
                            "_offset": np.arange(12, dtype=np.int64)})
    labels = [np.array([None if v is None else f"mixed={v}" for v in mixed], dtype=object),
              np.array([f"other={v}" for v in other], dtype=object)]
    with migrated_engine.begin() as conn:
        terms = Terms()
        terms.begin()
        predictions.ensure_partitions(conn, [batch.ts_ms])
        assert predictions.insert_new(conn, batch, window_start(batch.ts_ms, 300_000), labels,
                                      terms).all()
        rows = {r.event_id: r for r in conn.execute(text(
            "SELECT event_id, prediction_attrs(attr_ids) AS attrs, "
            "prediction_slices(slice_ids) AS slices FROM predictions")).all()}
    for i, eid in enumerate(batch.event_id.tolist()):
        want = {k: str(v[i]) for k, v in batch.attrs.items() if v[i] is not None}
        assert dict(rows[eid].attrs or {}) == want
        assert sorted(rows[eid].slices) == sorted(
            ["all", *(lab[i] for lab in labels if lab[i] is not None)])


def _edge_batch():
    """Values at the edges of each column's type, as the reference INSERT gets them too."""
    ids = ["é-ünï-🙂", "\u2028line", "x" * 128, "tab\tedge", "", "-1", "plain", "last"]
    n = len(ids)
    b = synthetic_batch(n=n, seed=11, error_rate=0.0)
    i32, i64 = 2**31 - 1, 2**63 - 1
    return replace(
        b, event_id=np.array(ids, dtype=object),
        model=np.array(["vït"] * 4 + ["m"] * 4, dtype=object),
        model_version=np.array(["1", "2"] * 4, dtype=object),
        pred=np.array([i32, -1, 0, -2**31, 5, 1, 2, 3], dtype=np.int64),
        confidence=np.array([np.nan, 0.0, 1.0, 0.1, 1e-45, np.nan, 0.5, 0.999], np.float32),
        is_error=np.array([True, False, True, False, False, True, False, False]),
        latency_ms=np.array([0.0, 1e-3, 123.456, 3.4028234663852886e38, 7.0, 1e6, 2.5, 0.1]),
        attrs={"camera_id": np.array(["c1", None, "ç", "c1", None, "c2", "c1", "c1"], object),
               "region": np.array(["eu", None, "eu", "us", None, None, "eu", "us"], object)},
        extras={"sample_uri": np.array([None, "", "file:///ü\\N", "u", None, "\\N", "x", "y"],
                                       dtype=object),
                "input_sha256": np.array(["f" * 64, None, "", "ab", None, "a" * 64, None, "c"],
                                         dtype=object),
                "_partition": np.array([0, i32, 1, 2, 3, 4, 5, 6], dtype=np.int64),
                "_offset": np.array([0, i64, -i64 - 1, -5, 7, 8, 9, 10], dtype=np.int64)})


def test_binary_copy_stores_what_a_plain_insert_stores(migrated_engine):
    """Each row read back equals the row that psycopg's own adapters INSERT from the same
    values (the COPY text path stored those too): NULLs, NaN confidence as NULL, unicode and
    empty strings, int and bigint limits, negative numbers, float4 rounding, empty and
    multi-element arrays, two versions and two models in one batch."""
    batch = _edge_batch()
    starts = window_start(batch.ts_ms, 300_000)
    slice_names = [np.array([None if c is None else f"camera_id={c}"
                             for c in batch.attrs["camera_id"]], dtype=object),
                   np.array([f"region={r}" for r in batch.attrs["region"]], dtype=object)]
    cols = ("event_id, ts_ms, model, model_version, window_start_ms, pred, confidence, is_error, "
            "latency_ms, slice_ids, attr_ids, input_sha256, sample_uri, kafka_partition, "
            "kafka_offset")
    terms = Terms()
    with migrated_engine.begin() as conn:
        terms.begin()
        predictions.ensure_partitions(conn, [batch.ts_ms])
        assert predictions.insert_new(conn, batch, starts, slice_names, terms).all()
        term = terms.ids(conn, ["all", *(s for names in slice_names for s in names if s),
                                *(f"{k}={v}" for k, vs in batch.attrs.items() for v in vs
                                  if v is not None)])
        conn.execute(text("CREATE TEMP TABLE reference (LIKE predictions)"))
        rows = []
        for i, eid in enumerate(batch.event_id.tolist()):
            conf = float(batch.confidence[i])
            rows.append({
                "event_id": eid, "ts_ms": int(batch.ts_ms[i]), "model": batch.model[i],
                "model_version": batch.model_version[i], "window_start_ms": int(starts[i]),
                "pred": int(batch.pred[i]), "confidence": None if np.isnan(conf) else conf,
                "is_error": bool(batch.is_error[i]), "latency_ms": float(batch.latency_ms[i]),
                "slice_ids": [term["all"], *(term[names[i]] for names in slice_names
                                             if names[i] is not None)],
                "attr_ids": [term[f"{k}={v[i]}"] for k, v in sorted(batch.attrs.items())
                             if v[i] is not None],
                "input_sha256": batch.extras["input_sha256"][i],
                "sample_uri": batch.extras["sample_uri"][i],
                "kafka_partition": int(batch.extras["_partition"][i]),
                "kafka_offset": int(batch.extras["_offset"][i])})
        conn.execute(text(f"INSERT INTO reference ({cols}) VALUES ("
                          + ", ".join(f":{c.strip()}" for c in cols.split(",")) + ")"), rows)
        stored = conn.execute(text(f"SELECT {cols} FROM predictions WHERE event_id = ANY(:ids) "
                                   "ORDER BY event_id"), {"ids": batch.event_id.tolist()}).all()
        want = conn.execute(text(f"SELECT {cols} FROM reference ORDER BY event_id")).all()
    assert [tuple(r) for r in stored] == [tuple(r) for r in want]
    by_id = {r.event_id: r for r in stored}
    assert by_id[""].attr_ids == [] and by_id["\u2028line"].confidence == 0.0
    assert by_id["é-ünï-🙂"].confidence is None and by_id["é-ünï-🙂"].sample_uri is None
    assert (by_id["\u2028line"].kafka_partition, by_id["\u2028line"].kafka_offset) == (
        2**31 - 1, 2**63 - 1)
    assert by_id["x" * 128].kafka_offset == -2**63 and by_id["tab\tedge"].pred == -2**31
    assert len(by_id["é-ünï-🙂"].slice_ids) == 3 and by_id["é-ünï-🙂"].sample_uri is None


def test_a_value_out_of_range_for_int_is_refused_not_wrapped(migrated_engine):
    batch = _edge_batch()
    batch = replace(batch, event_id=np.array([f"range-{i}" for i in range(len(batch))], object),
                    pred=batch.pred + np.array([1, 0, 0, 0, 0, 0, 0, 0]))
    with migrated_engine.begin() as conn:
        predictions.ensure_partitions(conn, [batch.ts_ms])
        with pytest.raises(ValueError, match="pred"):
            predictions.insert_new(conn, batch, window_start(batch.ts_ms, 300_000), [], Terms())


def test_a_copy_racing_an_uncommitted_one_skips_what_that_one_stored(migrated_engine):
    """A second transaction COPYs ids that a first one stored but has not committed: its COPY
    waits, fails on the key once the first commits, and the savepoint fallback (the same
    binary payload through the staging table) stores only the ids the first did not."""
    batch = synthetic_batch(n=6, seed=21)
    batch = replace(batch, event_id=np.array([f"race-{i}" for i in range(6)], dtype=object),
                    attrs={}, extras={**batch.extras, "_partition": np.zeros(6, dtype=np.int64),
                            "_offset": np.arange(6, dtype=np.int64)})
    first, second = batch.take(np.arange(4)), batch.take(np.array([2, 3, 4, 5]))
    with migrated_engine.begin() as conn:  # the term "all" committed: only the rows conflict
        predictions.ensure_partitions(conn, [batch.ts_ms])
        Terms().ids(conn, ["all"])
    result = {}

    def store_second():
        with migrated_engine.begin() as conn2:
            result["pid"] = conn2.connection.dbapi_connection.info.backend_pid
            result["keep"] = predictions.insert_new(
                conn2, second, window_start(second.ts_ms, 300_000), [], Terms()).tolist()

    with migrated_engine.connect() as conn:
        tx = conn.begin()
        assert predictions.insert_new(conn, first, window_start(first.ts_ms, 300_000), [],
                                      Terms()).all()
        worker = threading.Thread(target=store_second)
        worker.start()
        with migrated_engine.connect() as watch:  # until the second waits on the first's rows
            for _ in range(1200):  # a guard against a hang, not a timing assertion
                # (its terms are committed: only its rows can wait on the first's transaction;
                # pg_stat_activity's query text may still show its previous statement)
                if watch.execute(text(
                        "SELECT count(*) FROM pg_locks WHERE pid = :p AND NOT granted "
                        "AND locktype = 'transactionid'"), {"p": result.get("pid", -1)}).scalar():
                    break
                assert worker.is_alive(), result
                time.sleep(0.05)
            else:
                raise AssertionError("the second COPY never waited on the first's rows")
        tx.commit()
    worker.join()
    assert result["keep"] == [False, False, True, True]
    with migrated_engine.connect() as conn:
        stored = conn.execute(text("SELECT event_id, kafka_offset FROM predictions "
                                   "WHERE event_id LIKE 'race-%' ORDER BY 1")).all()
    assert [tuple(r) for r in stored] == [(f"race-{i}", i) for i in range(6)]


#: sha256 of :func:`test_copy_bytes_are_pinned`'s COPY streams (in arrival and in reverse order)
PINNED_COPY = ("8bb99fb87ca229a0", "7f4326ac116a26bd")


class _CrcTerms:
    """Term ids without a database: a term's CRC-32 (what ``_copy_binary`` does with the ids
    does not depend on how they were assigned)."""

    def ids(self, _conn, terms):
        return {t: zlib.crc32(t.encode()) % 2**31 for t in set(terms)}


def test_copy_bytes_are_pinned():
    """The COPY stream of a batch with repeated, missing, mixed-type and unhashable attribute
    values is byte for byte what it was before the combinations were found by ``np.unique``
    (sha256 written by main at 4bbbcef)."""
    b = synthetic_batch(n=400, seed=9)
    rng = np.random.default_rng(2)
    mixed = np.array([None, 1, "1", 2.5, "eu", 1.0, 7, "7"], dtype=object)[rng.integers(0, 8, 400)]
    odd = np.array(["a", None, ["l"]], dtype=object)[rng.integers(0, 3, 400)]
    batch = replace(b, attrs={**b.attrs, "mixed": mixed, "odd": odd},
                    extras={**b.extras, "_partition": np.zeros(400, dtype=np.int64),
                            "_offset": np.arange(400, dtype=np.int64)})
    labels = [np.array([None if v is None else f"mixed={v}" for v in mixed], dtype=object),
              np.array([f"cam={v}" for v in b.attrs["camera_id"]], dtype=object)]
    starts = window_start(batch.ts_ms, 300_000)
    for order, want in ((None, PINNED_COPY[0]), (np.arange(400)[::-1], PINNED_COPY[1])):
        data = predictions._copy_binary(None, batch, starts, labels, _CrcTerms(), order)
        assert hashlib.sha256(data).hexdigest()[:16] == want
