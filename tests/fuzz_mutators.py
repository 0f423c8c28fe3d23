"""Mutations of real events for fuzzing the decoder, driven by any source of choices.

A mutation first edits the event as a dict (drop a field, give it an edge value of another type,
reshape an embedding, rewrite a timestamp), then serialises it (orjson, or ``json.dumps`` that
writes ``NaN``/``Infinity`` and non-ASCII escapes), then edits the bytes (truncate, splice a
token such as ``\\u0000``, ``\\ud800``, ``1e400`` or an invalid UTF-8 byte, flip a byte).

Every choice comes from a :class:`Chooser`, so the same mutations run under atheris (its
``FuzzedDataProvider`` steers them by coverage, ``bench/fuzz_decode.py``), Hypothesis and a
seeded ``random.Random`` (``tests/test_decode_fuzz.py``).
"""

from __future__ import annotations

import base64
import json
import math
import random
import struct
from collections.abc import Callable
from typing import Any, Protocol

import orjson


class Chooser(Protocol):
    def below(self, n: int) -> int:
        """An integer in [0, n), n >= 1."""

    def blob(self, max_len: int) -> bytes:
        """Up to ``max_len`` arbitrary bytes."""


class RandomChooser:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def below(self, n: int) -> int:
        return self.rng.randrange(n)

    def blob(self, max_len: int) -> bytes:
        return self.rng.randbytes(self.rng.randrange(max_len + 1))


class ProviderChooser:
    """Choices from an ``atheris.FuzzedDataProvider`` (0 / empty once it runs dry)."""

    def __init__(self, fdp: Any) -> None:
        self.fdp = fdp

    def below(self, n: int) -> int:
        return self.fdp.ConsumeIntInRange(0, n - 1) if n > 1 else 0

    def blob(self, max_len: int) -> bytes:
        return self.fdp.ConsumeBytes(self.fdp.ConsumeIntInRange(0, max_len))


def pick(c: Chooser, items: list | tuple) -> Any:
    return items[c.below(len(items))]


NAN, INF = math.nan, math.inf
EDGE_NUMBERS = (0, 1, -1, 2, 0.5, -0.0, 1e-320, 3.4e38, 3.5e38, 1.7976931348623157e308, 65504.0,
                65520.0, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -2**63,
                -2**63 - 1, 10**30, 1_767_225_600_000, 253_402_300_799_999, 253_402_300_800_000,
                1.5, 0.9999, 1.0001, NAN, INF, -INF)
EDGE_STRINGS = ("", "x", "ok", "error", "f16", "f32", "1", "2", "NaN", "e" * 128, "e" * 129, "\u00e9",
                "\U0001f600", "\x7f", "a\x00b", "vit.prediction/v1", "vit.label/v1",
                "vit.prediction/v2", "2026-01-01T00:00:00Z", "AAA=", "AAAA", "AA==", "A===", "====",
                "!!not*base64!!", "AA AA", "AAAA\n")
EDGE_VALUES = (None, True, False, [], {}, [1], [0.5, 0.5], [[1.0]], {"a": 1}, {"a": None},
               {"a": [1]}, *EDGE_NUMBERS, *EDGE_STRINGS)
FIELDS = ("schema", "event_id", "ts", "model", "model_version", "artifact_id", "latency_ms",
          "status", "pred", "probs", "confidence", "embedding", "embedding_b64",
          "embedding_dtype", "image", "attrs", "input_sha256", "sample_uri", "batch_size",
          "cold_start", "gpu_mem_mb", "gpu_util", "error_code", "label", "source", "extra")
TOKENS = (b"NaN", b"-Infinity", b"Infinity", b"1e400", b"9" * 310, b"\\u0000", b"\\ud800",
          b"\\udc00\\ud800", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"null", b"[", b"]",
          b"{", b"}", b",", b":", b'"', b"\\", b"-", b"0", b".5", b"e5", b" ", b"\t", b"[" * 1100,
          b"18446744073709551616", b"-9223372036854775809", b"1" * 309)


# --- edits of the dict ------------------------------------------------------------------------

def _number(c: Chooser) -> Any:
    if c.below(3) == 0:
        return pick(c, EDGE_NUMBERS)
    raw = c.blob(8).ljust(8, b"\0")
    kind = c.below(3)
    if kind == 0:
        return struct.unpack("<d", raw)[0]
    if kind == 1:
        return struct.unpack("<q", raw)[0]
    return c.below(1000) / 10.0


def _timestamp(c: Chooser) -> Any:
    if c.below(2):
        return pick(c, (0, -1, 1.5, 1_767_225_600_000.9, 253_402_300_800_000, 253_402_300_799_999,
                        -0.0, "1767225600000", 2**63))
    y = pick(c, ("1969", "1970", "2026", "9999", "0000", "2O26", "+026", "\uff12026"))
    mo, d = pick(c, ("01", "02", "12", "13", "00", "1-")), pick(c, ("01", "28", "29", "30", "31",
                                                                 "32"))
    sep = pick(c, ("T", "t", " ", "_"))
    hms = pick(c, ("00:00:00", "23:59:59", "24:00:00", "12:60:00", "12:00:60", "1:00:000"))
    frac = pick(c, ("", ".", ".5", ".123", ".1234567891", ".12a", ",5"))
    zone = pick(c, ("Z", "z", "+01:00", "-23:59", "+24:00", "+01:60", "+0100", "", "+01:00Z",
                    "-00:00", " Z"))
    return f"{y}-{mo}-{d}{sep}{hms}{frac}{zone}"


def _floats_b64(c: Chooser, n: int, dtype: str) -> str:
    values = [pick(c, (0.0, 1.0, -2.5, 65504.0, 6e-8, NAN, INF, 3.5e38)) if c.below(8) == 0
              else (c.below(2001) - 1000) / 100.0 for _ in range(n)]
    fmt = "e" if dtype == "f16" else "f"
    packed = b"".join(_pack(fmt, v) for v in values)
    return base64.b64encode(packed).decode()


def _pack(fmt: str, v: float) -> bytes:
    try:
        return struct.pack("<" + fmt, v)
    except (OverflowError, struct.error):
        return struct.pack("<" + fmt, INF)


def _embedding(c: Chooser, ev: dict) -> None:
    n = pick(c, (0, 1, 2, 3, 4, 17, 64))
    kind = c.below(4)
    if kind == 0:
        ev.pop("embedding_b64", None)
        ev["embedding"] = [_number(c) if c.below(6) == 0 else (c.below(200) - 100) / 10
                           for _ in range(n)]
    elif kind in (1, 2):
        dtype = "f16" if kind == 1 else "f32"
        ev.pop("embedding", None)
        text = _floats_b64(c, n, dtype)
        if c.below(4) == 0:  # break the base64 text a little
            i = c.below(len(text) + 1)
            text = text[:i] + pick(c, ("=", "A", "*", "", "==", " ", "\u00e9")) + text[i + 1:]
        ev["embedding_b64"], ev["embedding_dtype"] = text, pick(c, (dtype, dtype, dtype, "f64",
                                                                    None, 16))
    else:
        ev["embedding_b64"] = ev.get("embedding_b64") or "AAAA"
        ev["embedding"] = [1.0, 2.0]


def _probs(c: Chooser, ev: dict) -> None:
    n = pick(c, (0, 1, 2, 3, 10))
    kind = c.below(3)
    if kind == 0 and n:
        ev["probs"] = [1.0 / n] * n  # sums to 1 (within float noise)
    elif kind == 1 and n:
        p = [round(c.below(100) / 100, 4) for _ in range(n)]
        ev["probs"] = p
    else:
        ev["probs"] = [_number(c) for _ in range(n)]
    if c.below(3) == 0 and ev["probs"]:
        ev["pred"] = pick(c, (0, len(ev["probs"]) - 1, len(ev["probs"]), 2**31 - 1))


def _nested(c: Chooser, ev: dict) -> None:
    name = pick(c, ("image", "attrs"))
    obj = ev.get(name)
    obj = dict(obj) if isinstance(obj, dict) else {}
    key = pick(c, ("width", "brightness", "camera_id", "region", "", "\u00e9", "a\x00"))
    obj[key] = pick(c, EDGE_VALUES) if c.below(2) else _number(c)
    ev[name] = obj


def _set(c: Chooser, ev: dict) -> None:
    field = pick(c, FIELDS)
    ev[field] = pick(c, EDGE_VALUES) if c.below(3) else _number(c)


def _drop(c: Chooser, ev: dict) -> None:
    if ev:
        del ev[pick(c, sorted(ev))]


def _status(c: Chooser, ev: dict) -> None:
    ev["status"] = pick(c, ("ok", "error", "OK", None))
    ev["error_code"] = pick(c, (None, "CUDA_OOM", 503, 5.0, True, ""))
    if c.below(2):
        ev.pop("pred", None)


def _ts(c: Chooser, ev: dict) -> None:
    ev["ts"] = _timestamp(c)


def _version(c: Chooser, ev: dict) -> None:
    """Another version of the same model: admitted, undecided or new to the consumer's gate."""
    ev["model_version"] = pick(c, ("1", "2", "3", "2026.11.1", "2026.11.2", "canary"))


DICT_EDITS: tuple[Callable[[Chooser, dict], None], ...] = (
    _set, _set, _drop, _embedding, _probs, _nested, _status, _ts, _version)


# --- serialisation and byte edits -------------------------------------------------------------

def serialise(c: Chooser, ev: dict) -> bytes:
    how = c.below(3)
    if how == 0:
        try:
            return orjson.dumps(ev)
        except (TypeError, orjson.JSONEncodeError):
            pass  # NaN is written as null by orjson; huge ints refuse: use the stdlib
    return json.dumps(ev, ensure_ascii=how == 1).encode("utf-8", "surrogatepass")


def _splice(c: Chooser, raw: bytes) -> bytes:
    i = c.below(len(raw) + 1)
    token = pick(c, TOKENS) if c.below(4) else c.blob(4)
    cut = c.below(3)  # 0: insert, 1-2: replace that many bytes
    return raw[:i] + token + raw[i + cut:]


def _truncate(c: Chooser, raw: bytes) -> bytes:
    return raw[:c.below(len(raw) + 1)]


def _flip(c: Chooser, raw: bytes) -> bytes:
    if not raw:
        return raw
    i = c.below(len(raw))
    return raw[:i] + bytes([raw[i] ^ (1 << c.below(8))]) + raw[i + 1:]


def _repeat(c: Chooser, raw: bytes) -> bytes:
    i = c.below(len(raw) + 1)
    j = min(len(raw), i + c.below(32))
    return raw[:j] + raw[i:j] + raw[j:]


BYTE_EDITS: tuple[Callable[[Chooser, bytes], bytes], ...] = (_splice, _splice, _truncate, _flip,
                                                             _repeat)


def mutate(c: Chooser, seed: bytes) -> bytes:
    """A mutant of the message ``seed``: up to 4 dict edits (when it is a JSON object), then up
    to 2 byte edits (most mutants get none, so they stay parseable and reach the field rules)."""
    raw = seed
    try:
        ev = orjson.loads(seed)
    except orjson.JSONDecodeError:
        ev = None
    if isinstance(ev, dict):
        for _ in range(c.below(5)):
            pick(c, DICT_EDITS)(c, ev)
        raw = serialise(c, ev)
    n_bytes = pick(c, (0, 0, 0, 0, 1, 2))
    for _ in range(n_bytes):
        raw = pick(c, BYTE_EDITS)(c, raw)
    return raw
