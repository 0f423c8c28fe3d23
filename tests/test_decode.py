"""Unit tests of the decoder (``monitor/core/ingest/decode.py``): every reason code from a
concrete bad message. Valid events, learnt dimensions and labels: ``test_decode_events.py``."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest

from monitor.core.ingest.decode import REASONS
from monitor.core.ingest.events import MAX_MESSAGE_BYTES, encode_label
from tests.decode_support import T0, decode, event, f16_b64, only_rejection, raw

# --- every reason code ------------------------------------------------------------------------

NAN_F16 = base64.b64encode(np.array([1.0, np.nan, 2.0], "<f2").tobytes()).decode()
INF_F32 = base64.b64encode(np.array([1.0, np.inf, 2.0], "<f4").tobytes()).decode()
BAD = {
    "empty-null": (None, "empty"),
    "empty-bytes": (b"", "empty"),
    "malformed-truncated": (b'{"schema": "vit.prediction/v1", "event_id": "e1"', "malformed_json"),
    "malformed-not-utf8": (b'{"event_id": "\xff\xfe"}', "malformed_json"),
    "malformed-array": (b"[1, 2]", "malformed_json"),
    "malformed-string": (b'"hello"', "malformed_json"),
    "malformed-surrogate": (b'{"event_id": "\\ud800"}', "malformed_json"),
    "malformed-nan-and-broken": (b'{"a": nan}', "malformed_json"),
    "nonfinite-nan": (raw().replace(b'"latency_ms":12.5', b'"latency_ms":NaN'), "non_finite"),
    "nonfinite-infinity": (raw().replace(b"12.5", b"Infinity"), "non_finite"),
    "nonfinite-neg-infinity": (raw().replace(b"12.5", b"-Infinity"), "non_finite"),
    "nonfinite-overflow": (raw().replace(b"12.5", b"1e400"), "non_finite"),
    "nonfinite-huge-int": (raw().replace(b"12.5", b"9" * 400), "non_finite"),
    "nonfinite-unknown-field": (raw(extra="x")[:-1] + b',"foo":[NaN]}', "non_finite"),
    "schema-other-version": (raw().replace(b"prediction/v1", b"prediction/v2"), "bad_schema"),
    "schema-absent": (orjson.dumps(event()), "bad_schema"),
    "schema-label": (encode_label("e1", 1, T0), "bad_schema"),
    "missing-event_id": (raw(event_id=None), "missing_field"),
    "missing-event_id-null": (raw(event_id="null"), "missing_field"),
    "missing-ts": (raw(ts=None), "missing_field"),
    "missing-model": (raw(model=None), "missing_field"),
    "missing-model_version": (raw(model_version=None), "missing_field"),
    "missing-latency_ms": (raw(latency_ms=None), "missing_field"),
    "missing-status": (raw(status=None), "missing_field"),
    "missing-pred-ok": (raw(pred=None), "missing_field"),
    "missing-error_code": (raw(status="error", pred=None), "missing_field"),
    "missing-embedding_dtype": (raw(embedding=None, embedding_b64="AAA="), "missing_field"),
    "type-latency-string": (raw(latency_ms="3"), "wrong_type"),
    "type-latency-bool": (raw(latency_ms=True), "wrong_type"),
    "type-pred-float": (raw(pred=1.0), "wrong_type"),
    "type-pred-string": (raw(pred="1"), "wrong_type"),
    "type-pred-bool": (raw(pred=True), "wrong_type"),
    "type-event_id": (raw(event_id=5), "wrong_type"),
    "type-ts-bool": (raw(ts=True), "wrong_type"),
    "type-ts-list": (raw(ts=[T0]), "wrong_type"),
    "type-model": (raw(model=["m"]), "wrong_type"),
    "type-model_version": (raw(model_version=2), "wrong_type"),
    "type-status": (raw(status=1), "wrong_type"),
    "type-confidence": (raw(confidence="0.9"), "wrong_type"),
    "type-probs-string": (raw(probs="0.5,0.5"), "wrong_type"),
    "type-probs-element": (raw(probs=[0.5, "0.5"]), "wrong_type"),
    "type-probs-bool": (raw(probs=[True, False]), "wrong_type"),
    "type-embedding-element": (raw(embedding=[1.0, True, 2.0]), "wrong_type"),
    "type-embedding-nested": (raw(embedding=[[1.0, 2.0]]), "wrong_type"),
    "type-embedding-object": (raw(embedding={"a": 1}), "wrong_type"),
    "type-embedding_b64": (raw(embedding=None, embedding_b64=5, embedding_dtype="f16"),
                           "wrong_type"),
    "type-embedding_dtype": (raw(embedding=None, embedding_b64="AAA=", embedding_dtype=16),
                             "wrong_type"),
    "type-image": (raw(image=[1, 2]), "wrong_type"),
    "type-image-value": (raw(image={"width": "224"}), "wrong_type"),
    "type-image-bool": (raw(image={"width": True}), "wrong_type"),
    "type-attrs": (raw(attrs="cam=1"), "wrong_type"),
    "type-attrs-object": (raw(attrs={"camera": {"id": 1}}), "wrong_type"),
    "type-attrs-bool": (raw(attrs={"night": True}), "wrong_type"),
    "type-batch_size": (raw(batch_size="8"), "wrong_type"),
    "type-gpu_util": (raw(gpu_util=[1]), "wrong_type"),
    "type-cold_start": (raw(cold_start="yes"), "wrong_type"),
    "type-artifact_id": (raw(artifact_id=5), "wrong_type"),
    "type-sample_uri": (raw(sample_uri={"s3": "x"}), "wrong_type"),
    "type-error_code": (raw(status="error", error_code=["oom"]), "wrong_type"),
    "value-latency-negative": (raw(latency_ms=-3), "bad_value"),
    "value-confidence-high": (raw(confidence=1.5), "bad_value"),
    "value-confidence-low": (raw(confidence=-0.01), "bad_value"),
    "value-pred-negative": (raw(pred=-1), "bad_value"),
    "value-pred-int32": (raw(probs=None, pred=2**31), "bad_value"),
    "value-pred-beyond-classes": (raw(pred=3), "bad_value"),
    "value-event_id-empty": (raw(event_id=""), "bad_value"),
    "value-event_id-long": (raw(event_id="x" * 129), "bad_value"),
    "value-model-empty": (raw(model=""), "bad_value"),
    "value-status": (raw(status="OK"), "bad_value"),
    "value-dtype": (raw(embedding=None, embedding_b64="AAA=", embedding_dtype="f64"),
                    "bad_value"),
    "value-b64-alphabet": (raw(embedding=None, embedding_b64="AA$A", embedding_dtype="f16"),
                           "bad_value"),
    "value-b64-padding": (raw(embedding=None, embedding_b64="AAA", embedding_dtype="f16"),
                          "bad_value"),
    "value-b64-length": (raw(embedding=None, embedding_b64="AAAA", embedding_dtype="f16"),
                         "bad_value"),
    "value-b64-empty": (raw(embedding=None, embedding_b64="", embedding_dtype="f32"),
                        "bad_value"),
    "value-both-embeddings": (raw(embedding_b64="AAA=", embedding_dtype="f16"), "bad_value"),
    "value-embedding-empty": (raw(embedding=[]), "bad_value"),
    "value-ts-words": (raw(ts="yesterday"), "bad_value"),
    "value-ts-naive": (raw(ts="2026-01-01T00:00:00"), "bad_value"),
    "value-ts-date-only": (raw(ts="2026-01-01"), "bad_value"),
    "value-ts-month-13": (raw(ts="2026-13-01T00:00:00Z"), "bad_value"),
    "value-ts-negative": (raw(ts=-5), "bad_value"),
    "value-ts-before-1970": (raw(ts="1969-12-31T23:59:59Z"), "bad_value"),
    "value-ts-year-10000": (raw(ts=253_402_300_800_000), "bad_value"),
    "value-probs-negative": (raw(probs=[-0.1, 0.6, 0.5]), "bad_value"),
    "value-probs-sum": (raw(probs=[0.2, 0.6, 0.1]), "bad_value"),
    "value-probs-empty": (raw(probs=[]), "bad_value"),
    "value-nul-in-string": (raw(attrs={"camera": "c\u00001"}), "bad_value"),
    "nonfinite-b64-f16-first": (raw(**f16_b64([1, 2, 3]))
                                .replace(f16_b64([1, 2, 3])["embedding_b64"].encode(),
                                         NAN_F16.encode()), "non_finite"),
    "nonfinite-b64-f32-first": (raw(embedding=None, embedding_b64=INF_F32,
                                    embedding_dtype="f32"), "non_finite"),
    "nonfinite-json-beyond-float32": (raw(embedding=[1.0, 1e39, 2.0]), "non_finite"),
}


@pytest.mark.parametrize(("value", "reason"), BAD.values(), ids=BAD.keys())
def test_each_bad_message_is_rejected_with_its_reason(value, reason):
    dims: dict[str, int] = {}
    rej = only_rejection(value, dims=dims)
    assert rej.reason == reason, rej.detail
    assert dims == {}  # a rejected event never teaches a dimension


def test_every_reason_code_is_exercised():
    exercised = {reason for _, reason in BAD.values()}
    assert exercised | {"oversized", "embedding_dim", "probs_dim"} == set(REASONS)


def test_oversized_is_checked_before_parsing():
    big = raw(sample_uri="s3://bucket/" + "x" * MAX_MESSAGE_BYTES)
    assert only_rejection(big).reason == "oversized"
    broken = b"{" * 200
    rej = only_rejection(broken, max_bytes=100)
    assert (rej.reason, rej.detail) == ("oversized", "message is 200 bytes, limit 100")
    assert decode(raw(), max_bytes=len(raw())).rejected == []  # the limit itself is allowed


def test_detail_is_one_human_line_and_ids_are_kept_when_readable():
    rej = only_rejection(raw(latency_ms=-3, model_version="2026.11.3"))
    assert rej.detail == "field 'latency_ms' must be a number >= 0, got -3"
    assert (rej.event_id, rej.model, rej.model_version) == ("e1", "m", "2026.11.3")
    assert only_rejection(raw(event_id=7)).event_id is None
    long = only_rejection(raw(attrs={"a": "x" * 500})[:-2] + b"[}")  # broken JSON
    assert long.event_id is None and len(long.detail) < 200


def test_embedding_dim_rejects_a_known_model_of_another_dimension():
    dims = {"m": 4}
    rej = only_rejection(raw(), dims=dims)
    assert rej.reason == "embedding_dim"
    assert rej.detail == "embedding of model 'm' must have 4 values, got 3"
    assert dims == {"m": 4}


def test_probs_dim_rejects_a_second_class_count():
    out = decode(raw(), raw(event_id="e2", probs=[0.5, 0.5]))
    assert len(out.batches["m"]) == 1
    assert [(r.offset, r.reason, r.event_id) for r in out.rejected] == [(101, "probs_dim", "e2")]


def test_deferred_checks_reject_late_rows_but_keep_the_rest():
    """Rows after the first of a model are checked vectorised; the batch drops them."""
    first = raw(**f16_b64([1, 2, 3]))
    nan_row = raw(event_id="e2", embedding=None, embedding_b64=NAN_F16, embedding_dtype="f16")
    inf_row = raw(event_id="e3", embedding=None, embedding_b64=INF_F32, embedding_dtype="f32")
    big_row = raw(event_id="e4", embedding=[1.0, -1e39, 0.0])
    bad_sum = raw(event_id="e5", probs=[0.5, 0.5, 0.5])
    negative = raw(event_id="e6", probs=[1.1, -0.1, 0.0])
    good = raw(event_id="e7")
    out = decode(first, nan_row, inf_row, big_row, bad_sum, negative, good)
    assert [(r.event_id, r.reason) for r in out.rejected] == [
        ("e2", "non_finite"), ("e3", "non_finite"), ("e4", "non_finite"), ("e5", "bad_value"),
        ("e6", "bad_value")]
    assert out.rejected[3].detail == "field 'probs' must sum to 1, sums to 1.5"
    assert out.rejected[4].detail == "field 'probs' must be >= 0, got -0.1"
    assert [r.value for r in out.rejected] == [nan_row, inf_row, big_row, bad_sum, negative]
    b = out.batches["m"]
    assert b.event_id.tolist() == ["e1", "e7"]
    assert b.extras["_offset"].tolist() == [100, 106]
    assert np.isfinite(b.embedding).all() and b.probs.shape == (2, 3)


def test_rejected_first_row_teaches_nothing_and_the_next_valid_row_does():
    dims: dict[str, int] = {}
    counts: dict[str, int] = {}
    out = decode(raw(probs=[0.5, 0.6], embedding=[1.0, 2.0]), raw(event_id="e2"),
                 dims=dims, counts=counts)
    assert [r.reason for r in out.rejected] == ["bad_value"]
    assert (dims, counts) == ({"m": 3}, {"m": 3})
    assert out.batches["m"].event_id.tolist() == ["e2"]


def test_a_row_that_would_teach_a_dimension_is_fully_checked_first():
    """Known C, unknown D: a first embedding whose probs fail must not teach D."""
    dims: dict[str, int] = {}
    counts = {"m": 3}
    out = decode(raw(probs=[0.9, 0.9, 0.9], embedding=[1.0, 2.0]), raw(event_id="e2"),
                 dims=dims, counts=counts)
    assert [(r.event_id, r.reason) for r in out.rejected] == [("e1", "bad_value")]
    assert dims == {"m": 3} and out.batches["m"].event_id.tolist() == ["e2"]
    nan_first = raw(embedding=None, embedding_b64=NAN_F16, embedding_dtype="f16")
    counts2: dict[str, int] = {}
    out = decode(nan_first, raw(event_id="e2", probs=[0.5, 0.5], embedding=[1.0]),
                 dims={"m": 3}, counts=counts2)
    assert [r.reason for r in out.rejected] == ["non_finite", "embedding_dim"]
    assert counts2 == {}  # neither rejected row taught C
