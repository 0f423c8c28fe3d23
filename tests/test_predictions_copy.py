"""The predictions COPY (monitor.store.predictions.insert_new) formats COPY text itself: every
value must come back as it went in, whatever characters an event id or URI holds, and a
duplicate must be reported as not inserted."""

from __future__ import annotations

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
