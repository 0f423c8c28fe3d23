"""The first stage of the fuzzing oracle: bytes to a JSON object the way the decoder's parser
reads them, with the stdlib's ``json.loads`` (see :mod:`tests.fuzz_oracle`).

Three places follow the wire parser (orjson) rather than JSON itself, and say so: an integer
outside [-2**63, 2**64) is read as a double, a lone surrogate (``\\ud800``) is malformed, and at
most 1024 arrays or objects nest.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

MAX_BYTES = 1 << 20
MAX_DEPTH = 1024  # orjson's nesting limit
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_NONFINITE_TOKEN = re.compile(rb"NaN|Infinity|\d{300}|[eE][+-]?\d{3}")


def _reasons(*reasons: str) -> frozenset[str]:
    return frozenset(reasons)


class _NonFinite(Exception):
    pass


def _parse_int(text: str) -> int | float:
    n = int(text)  # orjson reads one beyond 64 bits as a double (infinite beyond its range)
    return n if -2**63 <= n < 2**64 else _parse_float(text)


def _parse_float(text: str) -> float:
    x = float(text)
    if math.isinf(x):
        raise _NonFinite(text)
    return x


def _parse_constant(name: str) -> float:
    raise _NonFinite(name)


def _depth(v: Any) -> int:
    if type(v) is not dict and type(v) is not list:
        return 0
    if type(v) is dict:
        return 1 + max(map(_depth, v.values()), default=0)
    if type(v) is list:
        return 1 + max(map(_depth, v), default=0)
    return 0


def _has(v: Any, pred) -> bool:
    if type(v) is str:
        return pred(v)
    if type(v) is dict:
        return any(pred(k) or _has(x, pred) for k, x in v.items())
    return type(v) is list and any(_has(x, pred) for x in v)


def _surrogate(s: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in s)


def _any_surrogate(text: str) -> bool:
    """Whether any key or string of the message holds a lone surrogate, the values of repeated
    keys included: json.loads keeps only a key's last value, but orjson refuses the whole
    message wherever the surrogate stands (found by the campaign: ``"event_id": "\\udc00",
    "event_id": "e1"``)."""
    found = False

    def pairs(items: list) -> dict:
        nonlocal found
        found = found or any(_surrogate(k) or _has(v, _surrogate) for k, v in items)
        return dict(items)

    json.loads(text, object_pairs_hook=pairs, parse_int=_parse_int, parse_float=_parse_float,
               parse_constant=_parse_constant)
    return found


def parse(value: bytes | None, max_bytes: int = MAX_BYTES) -> dict | frozenset[str]:
    """The message as a dict, or the reason codes that reject it before any field is read."""
    if value is None or len(value) == 0:
        return _reasons("empty")
    if len(value) > max_bytes:
        return _reasons("oversized")
    try:
        text = bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        return _reasons("malformed_json")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))  # read deeper than orjson, then _depth decides
    try:
        return _parsed(value, text)
    finally:
        sys.setrecursionlimit(limit)


def _parsed(value: bytes, text: str) -> dict | frozenset[str]:
    deep = value.count(b"[") + value.count(b"{") > 900  # the decoder's json.loads may recurse
    # too deep first
    try:
        obj = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                         parse_constant=_parse_constant)
    except _NonFinite:
        # both parsers: the number cannot be a double
        return _reasons("non_finite", *(("malformed_json",) if deep else ()))
    except (ValueError, RecursionError):
        # Broken JSON. A NaN or huge number before the break may be reported instead.
        return _reasons("malformed_json", *(("non_finite",) if _NONFINITE_TOKEN.search(value)
                                           else ()))
    # Lone surrogates and NUL only come from \u escapes: the slow walks run only then.
    nesting = value.count(b"[") + value.count(b"{")
    if ((nesting > MAX_DEPTH and _depth(obj) > MAX_DEPTH) or type(obj) is not dict
            or (_ESCAPED_SURROGATE.search(value) and _any_surrogate(text))):
        return _reasons("malformed_json")
    if b"\\u0000" in value and _has(obj, lambda s: "\x00" in s):
        return _reasons("bad_value")
    return obj
