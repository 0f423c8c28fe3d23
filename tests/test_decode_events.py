"""Unit tests of the decoder (``monitor/core/ingest/decode.py``): exact columns of valid
events, learning of embedding dimensions and class counts, labels. No broker needed."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from monitor.core.ingest import decode as dec
from monitor.core.ingest.decode import LabelDecode, decode_labels, decode_predictions, parse_ts
from monitor.core.ingest.events import (
    LABELS_TOPIC,
    PREDICTIONS_TOPIC,
    embedding_to_b64,
    encode_label,
    encode_prediction,
)
from monitor.core.ingest.records import Record
from tests.decode_support import T0, decode, f16_b64, only_rejection, raw, recs

# --- valid events: exact columns --------------------------------------------------------------

def test_valid_event_columns_are_exact():
    full = encode_prediction({
        "event_id": "e1", "ts": "2026-01-01T00:00:01.250Z", "model": "vit", "model_version":
        "2026.11.3", "artifact_id": "sha256:ab", "latency_ms": 12, "status": "ok", "pred": 2,
        "probs": [0.1, 0.2, 0.7], "confidence": 0.69, "embedding": [1, 2.5, -3],
        "image": {"width": 224, "brightness": 0.5}, "attrs": {"camera_id": "c1", "store": 17,
                                                              "score": 0.5},
        "input_sha256": "ff" * 32, "sample_uri": "s3://b/k", "batch_size": 8,
        "cold_start": True, "gpu_mem_mb": 1024.5, "gpu_util": 0.75, "unknown_field": [1]})
    error = encode_prediction({
        "event_id": "e2", "ts": T0, "model": "vit", "model_version": "2026.11.3",
        "latency_ms": 0.5, "status": "error", "error_code": 503, "image": {"height": 100},
        "attrs": {"camera_id": "c2", "region": None}, "cold_start": False,
        "confidence": None})
    out = decode(full, error)
    assert out.rejected == []
    assert list(out.batches) == ["vit"]
    b = out.batches["vit"]
    assert len(b) == 2
    assert b.event_id.dtype == object and b.event_id.tolist() == ["e1", "e2"]
    assert b.ts_ms.dtype == np.int64 and b.ts_ms.tolist() == [T0 + 1250, T0]
    assert b.model.tolist() == ["vit", "vit"]
    assert b.model_version.tolist() == ["2026.11.3"] * 2
    assert b.latency_ms.dtype == np.float64 and b.latency_ms.tolist() == [12.0, 0.5]
    assert b.is_error.tolist() == [False, True]
    assert b.pred.dtype == np.int32 and b.pred.tolist() == [2, -1]
    assert b.confidence.dtype == np.float32
    assert b.confidence[0] == np.float32(0.69) and np.isnan(b.confidence[1])
    assert b.has_probs.tolist() == [True, False]
    assert b.probs.dtype == np.float32 and b.probs.shape == (2, 3)
    np.testing.assert_array_equal(b.probs[0], np.float32([0.1, 0.2, 0.7]))
    assert np.isnan(b.probs[1]).all()
    assert b.has_embedding.tolist() == [True, False]
    assert b.embedding.dtype == np.float32 and b.embedding.shape == (2, 3)
    np.testing.assert_array_equal(b.embedding[0], [1, 2.5, -3])
    assert np.isnan(b.embedding[1]).all()
    assert sorted(b.image) == ["brightness", "height", "width"]
    np.testing.assert_array_equal(b.image["width"], [224.0, np.nan])
    np.testing.assert_array_equal(b.image["height"], [np.nan, 100.0])
    assert all(col.dtype == np.float64 for col in b.image.values())
    assert {k: v.tolist() for k, v in b.attrs.items()} == {
        "camera_id": ["c1", "c2"], "score": ["0.5", None], "store": ["17", None]}
    assert all(col.dtype == object for col in b.attrs.values())
    x = b.extras
    assert x["batch_size"].tolist()[0] == 8.0 and math.isnan(x["batch_size"][1])
    assert x["cold_start"].tolist() == [1.0, 0.0]
    assert x["gpu_mem_mb"][0] == 1024.5 and x["gpu_util"][0] == 0.75
    assert x["artifact_id"].tolist() == ["sha256:ab", None]
    assert x["input_sha256"].tolist() == ["ff" * 32, None]
    assert x["sample_uri"].tolist() == ["s3://b/k", None]
    assert x["error_code"].tolist() == [None, "503"]
    assert x["_partition"].dtype == np.int64 and x["_partition"].tolist() == [3, 3]
    assert x["_offset"].dtype == np.int64 and x["_offset"].tolist() == [100, 101]
    assert out.positions == {(PREDICTIONS_TOPIC, 3): 102}
    assert len(b.take(np.array([1]))) == 1  # a decoded batch is a proper contract Batch


def test_confidence_is_derived_from_probs_when_absent():
    out = decode(raw(probs=[0.25, 0.5, 0.25]), raw(event_id="e2", confidence=0.4),
                 raw(event_id="e3", probs=None, confidence=None))
    b = out.batches["m"]
    assert b.confidence[:2].tolist() == [0.5, np.float32(0.4)]
    assert np.isnan(b.confidence[2]) and b.has_probs.tolist() == [True, True, False]


def test_probs_tolerance_allows_float_noise_and_4_decimal_rounding():
    noisy = [0.2, 0.7, 0.1 + 0.0009]
    rounded = [round(1 / 1024, 4)] * 1024  # 0.001 each: sums to 1.024
    out = decode(raw(probs=noisy), raw(event_id="e2", model="big", pred=0, probs=rounded,
                                       embedding=None))
    assert out.rejected == []
    assert only_rejection(raw(probs=[0.2, 0.7, 0.1 + 0.0016])).reason == "bad_value"


@pytest.mark.parametrize("dtype", ["f16", "f32"])
def test_base64_embeddings_round_trip(dtype):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(3, 768)).astype(np.float32)
    vectors[0, :4] = [0.0, -0.0, 6e-8, 65504.0]  # zero, sign, subnormal and max of float16
    values = []
    for i, v in enumerate(vectors):
        b64, dt = embedding_to_b64(v, dtype)
        values.append(raw(event_id=f"e{i}", embedding=None, embedding_b64=b64,
                          embedding_dtype=dt))
    dims: dict[str, int] = {}
    b = decode(*values, dims=dims).batches["m"]
    expected = vectors.astype(np.float16).astype(np.float32) if dtype == "f16" else vectors
    # f16 on the wire stays float16 in the Batch (the contract: no cast, half the memory)
    assert b.embedding.dtype == (np.float16 if dtype == "f16" else np.float32)
    np.testing.assert_array_equal(b.embedding.astype(np.float32), expected)
    assert np.signbit(b.embedding[0, 1]) and dims == {"m": 768}


def test_mixed_embedding_formats_and_missing_rows_in_one_model():
    v = np.array([0.5, -1.25, 3.0], dtype=np.float32)
    f16 = raw(event_id="a", **f16_b64(v))
    b64, _ = embedding_to_b64(v, "f32")
    f32 = raw(event_id="b", embedding=None, embedding_b64=b64, embedding_dtype="f32")
    lst = raw(event_id="c", embedding=v.tolist())
    none = raw(event_id="d", embedding=None)
    b = decode(none, f16, f32, lst).batches["m"]
    assert b.has_embedding.tolist() == [False, True, True, True]
    assert np.isnan(b.embedding[0]).all()
    np.testing.assert_array_equal(b.embedding[1:], np.stack([v, v, v]))


def test_binascii_fallback_decodes_like_the_active_backend(monkeypatch):
    """Whichever base64 backend is installed, the stdlib path gives the same answers."""
    v = np.linspace(-2, 2, 16, dtype=np.float32)
    good = raw(**f16_b64(v))
    bad = raw(embedding=None, embedding_b64="AA$A", embedding_dtype="f16")
    active = decode(good).batches["m"].embedding
    monkeypatch.setattr(dec, "_b64decode", dec._b64_stdlib)
    np.testing.assert_array_equal(decode(good).batches["m"].embedding, active)
    assert only_rejection(bad).reason == "bad_value"


@pytest.mark.parametrize("text", [
    "2026-01-01T00:00:01.5Z", "2026-01-01t00:00:01.500z", "2026-01-01 00:00:01.5Z",
    "2026-01-01T01:00:01.5+01:00", "2025-12-31T19:30:01.500-04:30",
    "2026-01-01T00:00:01.500999999Z", "2026-01-01T00:00:01.5+00:00"])
def test_rfc3339_equals_epoch_milliseconds(text):
    assert parse_ts(text) == T0 + 1500
    by_text = decode(raw(ts=text)).batches["m"].ts_ms
    by_number = decode(raw(ts=T0 + 1500)).batches["m"].ts_ms
    by_float = decode(raw(ts=T0 + 1500.9)).batches["m"].ts_ms
    assert by_text.tolist() == by_number.tolist() == by_float.tolist() == [T0 + 1500]


@pytest.mark.parametrize("value", [
    "2026-01-01T00:00:00", "2026-01-01", "20260101T000000Z", "2026-01-01T00:00:00.Z",
    "2026-01-01T00:00:00+0100", "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:60Z", "２０２６-01-01T00:00:00Z", "", True, None, [T0], -1, float("nan"),
    float("inf"), 1e20])
def test_parse_ts_refuses(value):
    with pytest.raises(ValueError):
        parse_ts(value)


def test_null_optional_fields_mean_absent():
    value = raw(confidence="null", probs="null", embedding="null", image="null", attrs="null",
                artifact_id="null", batch_size="null", cold_start="null")
    b = decode(value).batches["m"]
    assert b.has_probs.tolist() == [False] and b.probs.shape == (1, 0)
    assert b.embedding.shape == (1, 0) and b.image == {} and b.attrs == {}
    nested = decode(raw(image={"width": 10, "height": None}, attrs={"a": None, "b": "x"}))
    b = nested.batches["m"]
    assert list(b.image) == ["width"] and {k: v.tolist() for k, v in b.attrs.items()} == {
        "b": ["x"]}


# --- learning dimensions ----------------------------------------------------------------------

def test_per_model_batches_with_different_dimensions():
    a = raw(model="vit-b16", **f16_b64(np.ones(768)))
    b = raw(event_id="e2", model="vit-s", embedding=[0.0] * 384, probs=[0.5, 0.5], pred=0)
    c = raw(event_id="e3", model="vit-b16", **f16_b64(np.zeros(768)))
    dims: dict[str, int] = {}
    counts: dict[str, int] = {}
    out = decode(a, b, c, dims=dims, counts=counts)
    assert out.rejected == []
    assert sorted(out.batches) == ["vit-b16", "vit-s"]
    assert out.batches["vit-b16"].embedding.shape == (2, 768)
    assert out.batches["vit-b16"].probs.shape == (2, 3)
    assert out.batches["vit-s"].embedding.shape == (1, 384)
    assert out.batches["vit-s"].probs.shape == (1, 2)
    assert out.batches["vit-b16"].extras["_offset"].tolist() == [100, 102]
    assert dims == {"vit-b16": 768, "vit-s": 384}
    assert counts == {"vit-b16": 3, "vit-s": 2}


def test_learnt_dimension_persists_and_rejects_a_later_mismatch():
    dims: dict[str, int] = {"other": 5}
    assert decode(raw(), dims=dims).rejected == []
    assert dims == {"other": 5, "m": 3}
    restored = json.loads(json.dumps(dims))  # what the checkpoint stores
    out = decode(raw(event_id="e2", embedding=[1.0, 2.0, 3.0, 4.0]), raw(event_id="e3"),
                 dims=restored)
    assert [(r.event_id, r.reason) for r in out.rejected] == [("e2", "embedding_dim")]
    assert out.batches["m"].event_id.tolist() == ["e3"]


def test_class_counts_persist_across_calls_only_when_passed():
    counts: dict[str, int] = {}
    decode(raw(), counts=counts)
    assert counts == {"m": 3}
    rej = only_rejection(raw(probs=[1.0], pred=0), counts=counts)
    assert rej.reason == "probs_dim"
    assert rej.detail == "probs of model 'm' must have 3 values, got 1"
    # without class_counts, every call learns afresh
    assert decode(raw(probs=[1.0], pred=0)).rejected == []
    # a known class count also bounds pred on events without probs
    assert only_rejection(raw(probs=None, pred=3), counts=counts).reason == "bad_value"


def test_rejections_are_in_stream_order_and_positions_cover_all_records():
    values = [raw(), b"{", raw(event_id="e2", latency_ms=-1), raw(event_id="e3")]
    records = recs(*values, partition=0) + recs(b"", partition=1, first=7)
    out = decode_predictions(iter(records), {})  # any iterable
    assert [(r.partition, r.offset, r.reason) for r in out.rejected] == [
        (0, 101, "malformed_json"), (0, 102, "bad_value"), (1, 7, "empty")]
    assert out.positions == {(PREDICTIONS_TOPIC, 0): 104, (PREDICTIONS_TOPIC, 1): 8}
    assert out.n_accepted == 2


def test_no_records():
    out = decode_predictions([], {})
    assert (out.batches, out.rejected, out.positions) == ({}, [], {})


# --- labels -----------------------------------------------------------------------------------

def label_recs(*values) -> list[Record]:
    return recs(*values, topic=LABELS_TOPIC)


def test_labels_decode():
    out = decode_labels(label_recs(
        encode_label("e1", 3, T0), encode_label("e2", 0, "2026-01-01T00:00:00.007Z", "human"),
        encode_label("e1", 4, T0 + 5.5, "audit")))
    assert isinstance(out, LabelDecode) and len(out) == 3 and out.rejected == []
    assert out.event_id.tolist() == ["e1", "e2", "e1"]
    assert out.label.dtype == np.int64 and out.label.tolist() == [3, 0, 4]
    assert out.ts_ms.tolist() == [T0, T0 + 7, T0 + 5]
    assert out.source.tolist() == [None, "human", "audit"]
    assert out.partition.tolist() == [3, 3, 3] and out.offset.tolist() == [100, 101, 102]
    assert out.positions == {(LABELS_TOPIC, 3): 103}


DROP = object()  # a field left out of the label


def _label(**fields) -> bytes:
    """A label event with ``fields`` changed (``DROP`` leaves one out), as bytes."""
    event = {"schema": "vit.label/v1", "event_id": "e", "label": 1, "ts": 0, **fields}
    return json.dumps({k: v for k, v in event.items() if v is not DROP}).encode()


LABEL_BAD = {
    "missing-event_id": (_label(event_id=DROP), "missing_field"),
    "missing-label": (_label(label=DROP), "missing_field"),
    "missing-ts": (_label(ts=DROP), "missing_field"),
    "label-string": (_label(label="3"), "wrong_type"),
    "label-float": (_label(label=3.0), "wrong_type"),
    "label-bool": (_label(label=True), "wrong_type"),
    "label-negative": (_label(label=-1), "bad_value"),
    "source-number": (_label(source=1), "wrong_type"),
    "ts-bad": (_label(ts="soon"), "bad_value"),
    "schema-prediction": (raw(), "bad_schema"),
    "schema-absent": (_label(schema=DROP), "bad_schema"),
    "nan": (_label(ts=float("nan")), "non_finite"),  # json.dumps writes NaN, as a buggy producer
    "broken": (b'{"schema":', "malformed_json"),
    "empty": (None, "empty"),
}


@pytest.mark.parametrize(("value", "reason"), LABEL_BAD.values(), ids=LABEL_BAD.keys())
def test_label_rejections(value, reason):
    out = decode_labels(label_recs(encode_label("ok", 1, T0), value))
    assert out.event_id.tolist() == ["ok"]
    [rej] = out.rejected
    assert (rej.reason, rej.topic, rej.offset, rej.key, rej.value) == (
        reason, LABELS_TOPIC, 101, b"key-1", value)


def test_label_oversized_and_empty_batch():
    out = decode_labels(label_recs(encode_label("e", 1, T0)), max_bytes=10)
    assert [r.reason for r in out.rejected] == ["oversized"] and len(out) == 0
    assert out.label.dtype == np.int64 and out.event_id.dtype == object


def test_positions_of_interleaved_partitions_and_topics_are_each_ones_largest_offset():
    """Polls mix partitions (and topics), a partition's offsets need not ascend, and fast chunks
    mix with rejected records: each (topic, partition) gets its largest offset + 1, in order of
    first appearance, whatever took each record."""
    good = raw(**f16_b64([0.5, -1, 2]))
    layout = [("p", 2, 40), ("p", 0, 7), ("q", 2, 3), ("p", 2, 12), ("p", 0, 9), ("q", 2, 1)]
    records = [Record(topic, part, first + k, None, b"{" if k % 5 == 4 else good, 0)
               for k in range(150) for topic, part, first in layout]
    records += [Record("p", 2, 0, None, good, 0), Record("p", 7, 3, None, None, 0)]
    out = decode_predictions(records, {"m": 3}, {"m": 3})
    assert out.positions == {("p", 2): 190, ("p", 0): 159, ("q", 2): 153, ("p", 7): 4}
    assert list(out.positions) == [("p", 2), ("p", 0), ("q", 2), ("p", 7)]
    assert out.n_accepted == 6 * 120 + 1 and len(out.rejected) == 6 * 30 + 1


def test_image_and_attrs_columns_follow_keys_not_their_order():
    """Objects with the same keys in another order, or as many keys but another one, still
    give one column per key (NaN / None where absent)."""
    out = decode(raw(event_id="a", image={"w": 1, "h": 2}, attrs={"x": "1", "y": 2}),
                 raw(event_id="b", image={"h": 3, "w": 4.5}, attrs={"y": "3", "x": "4"}),
                 raw(event_id="c", image={"w": 5, "d": 6}, attrs={"x": "5", "z": None}))
    b = out.batches["m"]
    np.testing.assert_array_equal(b.image["w"], [1.0, 4.5, 5.0])
    np.testing.assert_array_equal(b.image["h"], [2.0, 3.0, np.nan])
    np.testing.assert_array_equal(b.image["d"], [np.nan, np.nan, 6.0])
    assert list(b.image) == ["d", "h", "w"]
    assert {k: v.tolist() for k, v in b.attrs.items()} == {"x": ["1", "4", "5"],
                                                            "y": ["2", "3", None]}
    same = decode(raw(event_id="a", image={"w": 1, "h": 2}, attrs={"x": "1", "y": 2}),
                  raw(event_id="b", image={"h": 3, "w": 4.5}, attrs={"y": "3", "x": "4"}))
    b = same.batches["m"]
    assert list(b.image) == ["h", "w"] and b.image["h"].tolist() == [2.0, 3.0]
    assert b.image["w"].tolist() == [1.0, 4.5] and b.image["w"].flags.c_contiguous
    assert {k: v.tolist() for k, v in b.attrs.items()} == {"x": ["1", "4"], "y": ["2", "3"]}
