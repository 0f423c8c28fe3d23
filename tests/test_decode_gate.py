"""The decoder with a DimensionGate (the consumer's path): nothing is learnt from one event;
events wait (parked) until the checkpoint's intake admits their version and decides its D."""

from __future__ import annotations

from monitor.core.ingest.decode import decode_predictions
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
