"""``window_states.pack``: a zlib stream either way; compressed unless compression buys little."""

import zlib

import numpy as np

from monitor.store import window_states
from monitor.store.window_states import pack, unpack


def _levels(monkeypatch, data: bytes) -> list[tuple[int, int]]:
    """(input length, level) of every zlib.compress call ``pack(data)`` makes."""
    calls = []
    real = zlib.compress

    def compress(b: bytes, level: int) -> bytes:
        calls.append((len(b), level))
        return real(b, level)

    monkeypatch.setattr(window_states.zlib, "compress", compress)
    pack(data)
    monkeypatch.undo()
    return calls


def test_an_incompressible_state_is_stored_not_deflated(monkeypatch):
    data = np.random.default_rng(0).bytes(14_000)  # like embedding_drift's float16 sample
    # whole state: level 0 only (deflating it would cost ~7x the CPU for nothing)
    assert [c for c in _levels(monkeypatch, data) if c[0] == len(data)] == [(len(data), 0)]
    packed = pack(data)
    assert unpack(packed) == data
    assert zlib.decompress(packed) == data  # plain zlib: older readers and SQL tools agree
    assert len(packed) < len(data) + 64  # stored blocks: a few bytes of framing
    assert len(packed) < len(zlib.compress(data, 1)) + 64


def test_a_compressible_state_is_compressed(monkeypatch):
    data = np.zeros(8_000, np.int64).tobytes() + b"counts" * 1_000
    assert [c for c in _levels(monkeypatch, data) if c[0] == len(data)] == [(len(data), 1)]
    packed = pack(data)
    assert unpack(packed) == data
    assert len(packed) < len(data) // 20


def test_a_large_state_is_always_compressed_so_it_stays_small():
    noise = np.random.default_rng(1).bytes(20_000)
    data = b"\0" * 30_000 + noise + b"\0" * 30_000  # an incompressible middle, 80 KB in all
    packed = pack(data)
    assert unpack(packed) == data
    assert len(packed) < 32 * 1024


def test_small_states_round_trip():
    for data in (b"", b"x", bytes(range(256)) * 5):
        assert unpack(pack(data)) == data
