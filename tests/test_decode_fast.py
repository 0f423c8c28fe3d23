"""The msgspec fast path (``monitor.core.ingest.fast_decode``) decodes exactly as the per-record
path: ``decode_predictions(..., fast=True)`` and ``fast=False`` give equal outcomes (every
column with its dtype and bytes, the rejections with reason and detail, positions, parked events,
learnt D and C) on hand-written edge cases and on seeded mutants of real events, interleaved
with valid events so that whole chunks, single records and deferrals all occur.
"""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import msgspec
import msgspec.inspect
import numpy as np
import orjson
import pytest

from monitor.core.ingest import decode as decode_module
from monitor.core.ingest import fast_decode
from monitor.core.ingest.decode import decode_predictions
from monitor.core.ingest.events import PREDICTION_SCHEMA
from tests.decode_support import event, f16_b64, raw, recs
from tests.fuzz_check import Harness
from tests.fuzz_corpus import seeds
from tests.fuzz_mutators import RandomChooser, mutate

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")
B64 = f16_b64(np.arange(6) / 8 - 0.3)["embedding_b64"]  # D = 6 (unpadded: 16 characters)
#: A valid message in the common wire format of model "h" (D = 6, C = 3).
OK = {"model": "h", "embedding": None, "embedding_b64": B64, "embedding_dtype": "f16",
      "image": {"width": 224, "brightness": 0.4}, "attrs": {"camera_id": "cam-3", "region": 2}}
_TOOK: list[str] = []  # event ids of the records the fast path took (the spy below)


@pytest.fixture(autouse=True)
def _spy(monkeypatch: pytest.MonkeyPatch) -> None:
    real = fast_decode.FastRows.chunk

    def chunk(self, records, first):
        got = real(self, records, first)
        if type(got) is dict:
            _TOOK.extend(event_id for block in got.values() for event_id in block[3])
        else:
            _TOOK.extend(hit[1][0] for hit in got if hit is not None)
        return got

    _TOOK.clear()
    monkeypatch.setattr(fast_decode.FastRows, "chunk", chunk)


class _Gate:
    def __init__(self, dims: dict[tuple[str, str], int]) -> None:
        self.dims = dims

    def expected(self, model: str, version: str) -> int | None:
        return self.dims.get((model, version))


def _same(a: Any, b: Any, where: str) -> None:
    """Equal in value, type, dtype and bytes (NaN equal to NaN, -0.0 not equal to 0.0)."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        if a.dtype == object:
            _same(a.tolist(), b.tolist(), where)
        else:
            assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for j, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{j}]")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            if f.name != "row":  # a parked row: compared through the settled decode below
                _same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, float) and a != a:
        assert b != b, where
    else:
        assert a == b and repr(a) == repr(b), (where, a, b)


def _both(values: list[bytes | None], dims: dict, counts: dict,
          gate: dict | None = None, **kw) -> int:
    """Decode ``values`` with the fast path and without, compare everything (also a settle of
    the parked events, as the intake does); how many records the fast path took."""
    outs = []
    for fast in (True, False):
        d, c = dict(dims), dict(counts)
        g = None if gate is None else _Gate(dict(gate))
        out = decode_predictions(recs(*values), d, c, gate=g, fast=fast, **kw)
        outs.append([out, d, c])
        if g is not None and out.parked:
            g.dims.update({(p.model, p.model_version): p.dim for p in out.parked})
            outs[-1].append(decode_predictions(out.parked, d, c, gate=g, fast=fast,
                                               decoded=out.parked))
        if fast:
            took = len(_TOOK)
            _TOOK.clear()
    _same(outs[0], outs[1], "decode")
    return took


def _msg(**changes) -> bytes:
    """``raw``, through the stdlib encoder: it writes integers beyond 64 bits too."""
    body = {"schema": PREDICTION_SCHEMA, **event(**changes)}
    body = {k: (None if isinstance(v, str) and v == "null" else v) for k, v in body.items()}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _valid(n: int, first: int = 0) -> list[bytes]:
    return [raw(**OK, event_id=f"v{first + k}") for k in range(n)]


HAND = {"h": 6}, {"h": 3}
HAND_GATE = {("h", "1"): 6, ("h", "2"): 0}


def _edge_cases() -> list[bytes | None]:
    """Messages near the fast path's borders (each valid or not for the slow path)."""
    ok = orjson.loads(raw(**OK))
    body = orjson.dumps(ok)[:-1]  # to append fields or duplicate keys
    out: list[bytes | None] = [None, b"", b"{", b"[]", b"null", raw(**OK) + b" ", raw(**OK) + b"x",
                               b"\xef\xbb\xbf" + raw(**OK), b" \t\n" + raw(**OK)]
    for key, value in [("event_id", "e" * 128), ("event_id", "e" * 129), ("event_id", ""),
                       ("event_id", "\u00e9" * 128), ("event_id", "\U0001f600" * 129),
                       ("ts", 0), ("ts", -1), ("ts", 1.5), ("ts", 1767225600000.0),
                       ("ts", 253_402_300_799_999), ("ts", 253_402_300_800_000), ("ts", True),
                       ("ts", "2026-01-01T00:00:00Z"), ("ts", "x"), ("model", ""), ("model", 3),
                       ("model_version", "2"), ("model_version", "9"), ("latency_ms", True),
                       ("latency_ms", -0.0), ("latency_ms", 0), ("latency_ms", -1),
                       ("latency_ms", 2**63 - 1), ("latency_ms", 2**63), ("latency_ms", 2**64),
                       ("latency_ms", 10**30), ("latency_ms", 1e308), ("latency_ms", "1"),
                       ("status", "error"), ("status", "OK"), ("pred", 2), ("pred", 3),
                       ("pred", -1), ("pred", 1.0), ("pred", True), ("pred", 2**31),
                       ("probs", [0.2, 0.7, 0.1000001]), ("probs", [0.5, 0.5]),
                       ("probs", [1, 0, 0]), ("probs", [-0.0, 1, 0]), ("probs", [0.5, 0.6, -0.1]),
                       ("probs", [0.5, 0.5, 1e-320]), ("probs", [True, 0, 0]), ("probs", []),
                       ("probs", [0.4, 0.4, 0.4]), ("probs", [1.0005, 0, 0]), ("probs", None),
                       ("confidence", 0), ("confidence", 1), ("confidence", -0.0),
                       ("confidence", 1.5), ("confidence", True), ("confidence", "null"),
                       ("embedding_b64", B64 + "===="), ("embedding_b64", B64[:-1] + "="),
                       ("embedding_b64", B64[:-4]), ("embedding_b64", B64 + B64[:8]),
                       ("embedding_b64", "*" + B64[1:]), ("embedding_b64", "/" * 16),
                       ("embedding_b64", "fwB/AH8AfwB/AH8A"),  # f16 NaN
                       ("embedding_b64", ""), ("embedding_b64", 5), ("embedding_dtype", "f32"),
                       ("embedding_dtype", None), ("embedding", [1, 2, 3, 4, 5, 6]),
                       ("image", {"w": None}), ("image", {"w": 10**20}), ("image", {"w": True}),
                       ("image", {"w": -0}), ("image", {"w": -0.0}), ("image", {}),
                       ("image", {"w": 2**63}), ("image", {"w": "x"}), ("image", "null"),
                       ("image", []), ("attrs", {"a": None, "b": 1}), ("attrs", {"a": 10**20}),
                       ("attrs", {"a": 2**63 - 1}), ("attrs", {"a": -2**63 - 1}),
                       ("attrs", {"a": 1e16}), ("attrs", {"a": -0.0}), ("attrs", {"a": True}),
                       ("attrs", {"a": "\u00e9\x7f"}), ("attrs", {"a": "a\x00b"}),
                       ("attrs", {"\u00e9": "x"}), ("attrs", {"a": [1]}),
                       ("error_code", 503), ("error_code", 2**64), ("error_code", 5.0),
                       ("error_code", True), ("error_code", "E"), ("cold_start", True),
                       ("cold_start", 1), ("cold_start", 0.5), ("cold_start", "yes"),
                       ("batch_size", 8), ("batch_size", 10**20), ("gpu_mem_mb", 1024.5),
                       ("gpu_util", "0.5"), ("artifact_id", "a"), ("artifact_id", 1),
                       ("input_sha256", "0f"), ("sample_uri", "s3://b/k"), ("extra", 1),
                       ("extra", "x"), ("label", 3), ("schema", "vit.prediction/v2"),
                       ("schema", None)]:
        out.append(_msg(**{**OK, key: value}))
    for tail in [b',"ts":5}', b',"ts":1.5}', b',"pred":2}', b',"pred":9}', b',"probs":[1,0,0]}',
                 b',"model":"x"}', b',"model":"h"}', b',"latency_ms":1e400}', b',"extra":1e400}',
                 b',"extra":NaN}', b',"extra":18446744073709551616}', b',"event_id":"\\u0000"}',
                 b',"event_id":"\\ud800"}', b',"event_id":"\\u00e9"}', b',"a\\/":1}',
                 b',"attrs":{"a":1,"a":null}}', b',"attrs":{"a":true,"a":1}}',
                 b',"image":{"w":1,"w":2}}', b',"confidence":1,"confidence":null}',
                 b',"latency_ms":"x","latency_ms":3}', b',"latency_ms":3,"latency_ms":"x"}',
                 b',"embedding":null}', b',"probs":[1e400,0,0]}', b',"probs":[1' + b"0" * 400
                 + b',0,0]}', b',"attrs":{"a":' + b"9" * 310 + b"}}", b"}}", b",}"]:
        out.append(body + tail)
    out.append(raw(**OK).replace(b'"h"', b'"\\u0068"'))  # an escape in a valid event
    out.append(raw(**OK).replace(b'"cam-3"', b'"\xff"'))  # not UTF-8
    out.append(raw(**OK).replace(b'"cam-3"', b'"\xed\xa0\x80"'))  # a surrogate in UTF-8
    return out


@pytest.mark.parametrize("how", ["known", "fresh", "gate", "consumer"])
@pytest.mark.parametrize("chunk", [128, 4, 1])
def test_edge_cases_decode_alike(how: str, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each edge case alone among valid events, then all together. "consumer": a gate, and C
    learnt afresh by each call (as ``vitmon run`` decodes)."""
    monkeypatch.setattr(fast_decode, "CHUNK", chunk)
    dims, counts = ({}, {}) if how in ("fresh", "consumer") else HAND
    gate = HAND_GATE if how in ("gate", "consumer") else None
    edges = _edge_cases()
    took = 0
    for value in edges:
        took += _both([*_valid(2 * chunk, 0), value, *_valid(chunk, 1000)], dims, counts, gate)
    took += _both(_valid(130) + edges + _valid(130), dims, counts, gate)
    took += _both(edges[::-1] + _valid(300), dims, counts, gate, max_bytes=700)
    # The fast path took most valid events ("fresh": the first teaches D and C, and the fast
    # path pauses after a chunk where it took nothing).
    assert took > (0.5 if how in ("fresh", "consumer") else 0.9) * (3 * chunk * len(edges) + 560), took


@pytest.mark.parametrize("how", Harness.HOW)
@pytest.mark.parametrize("chunk", [128, 8])
def test_mutants_decode_alike(how: str, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seeded mutants of real events (the fuzz campaign's mutators), a few per poll among the
    seeds themselves, decode the same with and without the fast path."""
    monkeypatch.setattr(fast_decode, "CHUNK", chunk)
    harness = Harness(*seeds())
    good = [v for v in harness.preds if b'"vit-tiny-digits"' in v and b'"ts":"' not in v]
    rng = random.Random(29)
    chooser = RandomChooser(rng)
    dims, counts = ({}, {}) if how == "fresh" else (harness.dims, harness.counts)
    gate = harness.gate if how == "gate" else None
    took = total = 0
    for _ in range(60):
        poll = [rng.choice(good) for _ in range(3 * chunk)]
        for _ in range(rng.choice((1, 2, 5))):
            poll.insert(rng.randrange(len(poll) + 1), mutate(chooser, rng.choice(harness.preds)))
        took += _both(poll, dims, counts, gate)
        total += len(poll)
    assert took > total / (3 if how == "fresh" else 2), (took, total)  # (as above)


def test_the_struct_follows_the_decoder() -> None:
    """The fast path's constants are the decoder's."""
    fields = {f.name: f.type for f in msgspec.inspect.type_info(fast_decode._Event).fields}
    assert fields["schema"].values == (PREDICTION_SCHEMA,)
    assert fields["status"].values == ("ok",)
    assert fields["event_id"].max_length == decode_module.MAX_EVENT_ID_CHARS
    assert fields["ts"].lt == decode_module._MAX_TS_MS
    assert fields["pred"].le == decode_module._INT32_MAX
    assert fast_decode._F16 == decode_module._F16
