"""The fuzzing oracle: event contract v1 decoded a second time, plainly, with ``json.loads``.

The decoder (``monitor/core/ingest/decode.py``) is written for speed: orjson, inline type checks,
vectorised checks over a batch. This module is written for reading: the stdlib parser, one rule
after the other as the brief and the decoder's docstring state them, one event at a time. The
fuzzing harness (:mod:`tests.fuzz_check`) decodes the same bytes with both and requires:

- an input the oracle finds valid is accepted, and every decoded column of its row equals the
  oracle's value;
- an input the oracle finds invalid is rejected, with a reason code among the rules it breaks
  (:attr:`Verdict.reasons`: the oracle collects *every* broken rule, so the decoder may stop at
  whichever it checks first).

Bytes become a JSON object in :mod:`tests.fuzz_json` (where the wire parser's quirks are).

The consumer decodes with a dimension *gate* (robust's consensus: D per (model, version), never
learnt from one event): a valid event whose version is not admitted, or whose version's D is
undecided while it carries an embedding, is *parked* (:attr:`Verdict.parked`) rather than
accepted or rejected.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from datetime import date
from typing import Any, NamedTuple

from tests.fuzz_json import MAX_BYTES, parse

PREDICTION_SCHEMA, LABEL_SCHEMA = "vit.prediction/v1", "vit.label/v1"
MAX_TS_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z, exclusive
INT32_MAX = 2**31 - 1
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
                      r"([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


class Verdict(NamedTuple):
    """``reasons`` empty: valid, and ``fields`` holds the decoded values (else None)."""

    reasons: frozenset[str]
    fields: dict[str, Any] | None = None
    parked: bool = False  # valid, held for the consumer's consensus (only with a gate)

    @property
    def valid(self) -> bool:
        return not self.reasons


def _reject(*reasons: str) -> Verdict:
    return Verdict(frozenset(reasons))


# --- fields ---------------------------------------------------------------------------------

def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_num(v: Any) -> bool:
    return type(v) in (int, float)


def rfc3339_ms(s: str) -> int | None:
    """Epoch ms of an RFC 3339 date-time (fraction truncated to ms), None if it is not one."""
    m = _RFC3339.fullmatch(s)
    if m is None:
        return None
    y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
    frac, off = m.group(7), m.group(8)
    try:
        day = date(y, mo, d)
    except ValueError:
        return None
    if h > 23 or mi > 59 or sec > 59 or (frac is not None and len(frac) < 2):
        return None
    offset_min = 0
    if off not in ("Z", "z"):
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            return None
        offset_min = (oh * 60 + om) * (1 if off[0] == "+" else -1)
    days = day.toordinal() - date(1970, 1, 1).toordinal()
    seconds = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60
    ms_frac = int((frac[1:] + "000")[:3]) if frac else 0
    return seconds * 1000 + ms_frac


def _ts(v: Any, bad: set[str]) -> int | None:
    if v is None:
        bad.add("missing_field")
    elif type(v) is str:
        ms = rfc3339_ms(v)
        if ms is None or not 0 <= ms < MAX_TS_MS:
            bad.add("bad_value")
        return ms
    elif _is_num(v):
        if 0 <= v < MAX_TS_MS:
            return int(v)
        bad.add("bad_value")
    else:
        bad.add("wrong_type")
    return None


def _choice(v: Any, allowed: tuple[str, ...], bad: set[str]) -> None:
    """A required string with a fixed set of values."""
    _required_str(v, bad)
    if type(v) is str and v and v not in allowed:
        bad.add("bad_value")


def _required_str(v: Any, bad: set[str], max_len: int | None = None) -> None:
    if v is None:
        bad.add("missing_field")
    elif type(v) is not str:
        bad.add("wrong_type")
    elif len(v) == 0 or (max_len is not None and len(v) > max_len):
        bad.add("bad_value")


def _numbers(v: Any, bad: set[str]) -> list | None:
    """An optional non-empty array of numbers."""
    if v is None:
        return None
    if type(v) is not list or not all(_is_num(x) for x in v):
        bad.add("wrong_type")
        return None
    if not v:
        bad.add("bad_value")
        return None
    return v


def _total(xs: list) -> float:
    try:
        return math.fsum(xs)
    except OverflowError:  # beyond a double on the way: far from 1
        return math.inf


def _f32(x: float) -> float:
    """x rounded to float32 as numpy does (inf beyond its range)."""
    try:
        return struct.unpack("<f", struct.pack("<f", float(x)))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def _embedding(d: dict, bad: set[str]) -> list[float] | None:
    e, b = d.get("embedding"), d.get("embedding_b64")
    if e is not None:
        if b is not None:
            bad.add("bad_value")
        e = _numbers(e, bad)
        return None if e is None else [_f32(x) for x in e]
    if b is None:
        return None
    dtype = d.get("embedding_dtype")
    if type(b) is not str:
        bad.add("wrong_type")
    _choice(dtype, ("f16", "f32"), bad)
    if type(b) is not str or dtype not in ("f16", "f32"):
        return None
    if not re.fullmatch(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?", b):
        bad.add("bad_value")
        return None
    try:
        raw = base64.b64decode(b, validate=True)
    except binascii.Error:
        bad.add("bad_value")
        return None
    size = 2 if dtype == "f16" else 4
    if not raw or len(raw) % size:
        bad.add("bad_value")
        return None
    return list(struct.unpack(f"<{len(raw) // size}{'e' if size == 2 else 'f'}", raw))


def _object_of(v: Any, ok_types: tuple, bad: set[str]) -> dict | None:
    if v is None:
        return None
    if type(v) is not dict or not all(x is None or type(x) in ok_types for x in v.values()):
        bad.add("wrong_type")
        return None
    return {k: x for k, x in v.items() if x is not None}


def _optional(v: Any, ok_types: tuple, bad: set[str]) -> Any:
    if v is not None and type(v) not in ok_types:
        bad.add("wrong_type")
        return None
    return v


def _of_schema(value: bytes | None, schema: str, max_bytes: int) -> dict | Verdict:
    d = parse(value, max_bytes)
    if not isinstance(d, dict):
        return Verdict(d)
    return d if d.get("schema") == schema else _reject("bad_schema")


def prediction(value: bytes | None, dims: dict[str, int], counts: dict[str, int],
               max_bytes: int = MAX_BYTES,
               gate: dict[tuple[str, str], int] | None = None) -> Verdict:
    """Verdict on one prediction message; a valid one teaches ``dims``/``counts`` (in place).
    With a ``gate`` ((model, version) -> D, 0 undecided, absent: not admitted), D comes from it
    and ``dims`` is neither read nor taught."""
    d = _of_schema(value, PREDICTION_SCHEMA, max_bytes)
    if isinstance(d, Verdict):
        return d
    bad: set[str] = set()
    get = d.get
    _required_str(get("event_id"), bad, 128)
    ts = _ts(get("ts"), bad)
    _required_str(get("model"), bad)
    _required_str(get("model_version"), bad)
    latency = get("latency_ms")
    if latency is None:
        bad.add("missing_field")
    elif not _is_num(latency):
        bad.add("wrong_type")
    elif latency < 0:
        bad.add("bad_value")
    status = get("status")
    _choice(status, ("ok", "error"), bad)
    is_error = status == "error"
    pred = get("pred")
    if pred is None:
        if not is_error:
            bad.add("missing_field")
        pred = -1
    elif not _is_int(pred):
        bad.add("wrong_type")
    elif not 0 <= pred <= INT32_MAX:
        bad.add("bad_value")
    error_code = get("error_code")
    if error_code is None:
        if is_error:
            bad.add("missing_field")
    elif _is_int(error_code):
        error_code = str(error_code)
    elif type(error_code) is not str:
        bad.add("wrong_type")
    probs = _numbers(get("probs"), bad)
    confidence = get("confidence")
    if confidence is not None:
        if not _is_num(confidence):
            bad.add("wrong_type")
        elif not 0 <= confidence <= 1:
            bad.add("bad_value")
    emb = _embedding(d, bad)
    image = _object_of(get("image"), (int, float), bad)
    attrs = _object_of(get("attrs"), (str, int, float), bad)
    extras = {k: _optional(get(k), (int, float), bad)
              for k in ("batch_size", "gpu_mem_mb", "gpu_util")}
    extras["cold_start"] = _optional(get("cold_start"), (bool, int, float), bad)
    for k in ("artifact_id", "input_sha256", "sample_uri"):
        extras[k] = _optional(get(k), (str,), bad)
    model, version = get("model"), get("model_version")
    if type(model) is str:
        known = (dims.get(model) if gate is None else
                 gate.get((model, version)) or None if type(version) is str else None)
        if emb is not None and known is not None and len(emb) != known:
            bad.add("embedding_dim")
        if probs is not None and model in counts and len(probs) != counts[model]:
            bad.add("probs_dim")
        n_classes = counts.get(model, len(probs) if probs is not None else None)
        if n_classes is not None and type(pred) is int and pred >= n_classes:
            bad.add("bad_value")
    if probs is not None and (min(probs) < 0
                              or abs(_total(probs) - 1) > 1e-3 + 5e-5 * len(probs)):
        bad.add("bad_value")
    if emb is not None and not all(math.isfinite(x) for x in emb):
        bad.add("non_finite")
    if bad:
        return Verdict(frozenset(bad))
    g = None if gate is None else gate.get((model, version), -1)  # -1: not admitted
    if g == -1 or (g == 0 and emb is not None):  # not admitted, or its D undecided
        return Verdict(frozenset(), parked=True)
    if emb is not None and gate is None:
        dims.setdefault(model, len(emb))
    if probs is not None:
        counts.setdefault(model, len(probs))
    if confidence is None:
        confidence = max(probs) if probs is not None else math.nan
    cold = extras["cold_start"]
    return Verdict(frozenset(), {
        "event_id": d["event_id"], "ts_ms": ts, "model": model, "model_version": d["model_version"],
        "latency_ms": float(latency), "is_error": is_error, "pred": pred,
        "confidence": _f32(confidence), "probs": None if probs is None else [_f32(p) for p in probs],
        "embedding": emb, "image": {k: float(x) for k, x in (image or {}).items()},
        "attrs": {k: x if type(x) is str else str(x) for k, x in (attrs or {}).items()},
        "batch_size": extras["batch_size"], "gpu_mem_mb": extras["gpu_mem_mb"],
        "gpu_util": extras["gpu_util"], "cold_start": None if cold is None else float(cold),
        "artifact_id": extras["artifact_id"], "input_sha256": extras["input_sha256"],
        "sample_uri": extras["sample_uri"], "error_code": error_code})


def label(value: bytes | None, max_bytes: int = MAX_BYTES) -> Verdict:
    """Verdict on one label message."""
    d = _of_schema(value, LABEL_SCHEMA, max_bytes)
    if isinstance(d, Verdict):
        return d
    bad: set[str] = set()
    _required_str(d.get("event_id"), bad, 128)
    lab = d.get("label")
    if lab is None:
        bad.add("missing_field")
    elif not _is_int(lab):
        bad.add("wrong_type")
    elif not 0 <= lab <= INT32_MAX:
        bad.add("bad_value")
    ts = _ts(d.get("ts"), bad)
    source = _optional(d.get("source"), (str,), bad)
    if bad:
        return Verdict(frozenset(bad))
    return Verdict(frozenset(), {"event_id": d["event_id"], "label": lab, "ts_ms": ts,
                                 "source": source})

