"""The decoder with a DimensionGate (the consumer's path): nothing is learnt from one event;
events wait (parked) until the checkpoint's intake admits their version and decides its D."""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from monitor.core.ingest.decode import decode_predictions
from monitor.core.ingest.events import encode_prediction
from monitor.core.ingest.records import Record
from tests.test_intake import event


class Gate:
    def __init__(self, dims: dict[tuple[str, str], int | None]) -> None:
        self.dims = dims

    def expected(self, model: str, version: str) -> int | None:
        return self.dims.get((model, version))


def decode(values: list[bytes], gate: Gate):
    return decode_predictions([Record("t", 0, o, None, v, -1) for o, v in enumerate(values)], {},
                              gate=gate)


def test_an_unknown_version_and_an_undecided_dimension_park_valid_events_only():
    """Version "1" is admitted with D undecided, version "new" is not admitted yet."""
    values = [event(0, 0, 17, "c"), event(1, 0, 64, "c"), event(2, 0, 64, "c", version="new"),
              b"{broken"]
    embedding_dims: dict = {}
    out = decode_predictions([Record("t", 0, o, None, v, -1) for o, v in enumerate(values)],
                             embedding_dims, gate=Gate({("vit", "1"): 0}))
    assert [(p.offset, p.model_version, p.dim) for p in out.parked] == [
        (0, "1", 17), (1, "1", 64), (2, "new", 64)]
    assert out.batches == {} and [r.reason for r in out.rejected] == ["malformed_json"]
    assert embedding_dims == {}  # nothing learnt


def test_a_decided_dimension_accepts_and_rejects_per_version():
    values = [event(0, 0, 17, "c"), event(1, 0, 64, "c"), event(2, 0, 8, "c", version="2"),
              event(3, 0, 64, "c", version="2")]
    out = decode(values, Gate({("vit", "1"): 64, ("vit", "2"): 8}))
    assert sorted((k, b.embedding.shape) for k, b in out.batches.items()) == [
        ("vit", (1, 64)), ("vit#8", (1, 8))]  # versions of different D: one batch each
    assert [(r.offset, r.reason) for r in out.rejected] == [(0, "embedding_dim"),
                                                            (3, "embedding_dim")]
    assert out.parked == []


def _columns(batch) -> dict:
    """Every column of a Batch as plain lists (NaN as None), for equality."""
    def plain(a):
        a = np.asarray(a)
        if a.dtype.kind == "f":
            a = np.where(np.isnan(a), None, a.astype(np.float64)).astype(object)
        return a.tolist()
    out = {f.name: plain(getattr(batch, f.name)) for f in fields(batch)
           if f.name not in ("image", "attrs", "extras")}
    for group in ("image", "attrs", "extras"):
        out.update({f"{group}.{k}": plain(v) for k, v in getattr(batch, group).items()})
    return out


def test_parked_rows_settle_as_a_fresh_decode_would():
    """The intake hands this checkpoint's parked events back with the rows the decoder kept
    (``decoded=``): they are not parsed again, only checked against D and C, and the batches
    and rejections (reasons, details, ids) are those of decoding the bytes afresh."""
    def other(i: int, **fields_) -> bytes:
        return encode_prediction({"event_id": f"x-{i}", "ts": 1_000 + i, "model": "vit",
                                  "model_version": "1", "latency_ms": 3.0, "status": "ok",
                                  "pred": 1, **fields_})
    values = [event(0, 0, 64, "c"), event(1, 5, 17, "c"), event(2, 9, 64, "d"),
              other(3, probs=[0.5, 0.5]),  # probs_dim: C=3 was learnt from the first
              other(4, pred=7),  # pred beyond C
              other(5, image={"brightness": 0.5}, confidence=0.25), event(6, 11, 64, "e")]
    records = [Record("t", 0, o, None, v, -1) for o, v in enumerate(values)]
    first = decode_predictions(records, {}, gate=Gate({}))  # version not admitted: all parked
    assert [p.offset for p in first.parked] == list(range(len(values)))
    assert all(p.row is not None for p in first.parked)
    settle = Gate({("vit", "1"): 64})
    fresh = decode_predictions(records, {}, gate=settle)
    kept = decode_predictions(records, {}, gate=settle, decoded=first.parked)
    assert [(r.offset, r.reason, r.detail, r.event_id, r.model, r.model_version)
            for r in kept.rejected] == [
        (r.offset, r.reason, r.detail, r.event_id, r.model, r.model_version)
        for r in fresh.rejected]
    assert [(r.offset, r.reason) for r in kept.rejected] == [
        (1, "embedding_dim"), (3, "probs_dim"), (4, "bad_value")]
    assert kept.batches.keys() == fresh.batches.keys() == {"vit"}
    assert _columns(kept.batches["vit"]) == _columns(fresh.batches["vit"])
    assert kept.positions == fresh.positions and kept.parked == fresh.parked == []
