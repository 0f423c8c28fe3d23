"""Serialisation of detector states and reference profiles: frozen dataclasses, mappings and
lists of numbers, strings and numpy arrays to JSON bytes and back, exactly (arrays keep their
dtype and shape, NaN and infinities survive). Part of the contract: detectors reach it as
``monitor.contract.DataclassStateCodec``. Imports only numpy and orjson."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import orjson
from pybase64 import b64decode, b64encode  # SIMD; the same text as the standard library's


class DataclassStateCodec:
    """Mixin: JSON serialisation for states that are frozen dataclasses (set ``state_type``).

    numpy arrays are stored as dtype, shape and base64 bytes, so they survive exactly.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class S:
    ...     n: int
    ...     counts: np.ndarray
    >>> class C(DataclassStateCodec):
    ...     state_type = S
    >>> C().loads(C().dumps(S(3, np.arange(4, dtype=np.int16)))).counts
    array([0, 1, 2, 3], dtype=int16)
    """

    state_type: ClassVar[type]

    def dumps(self, state: Any) -> bytes:
        return orjson.dumps(_encode(state))

    def loads(self, data: bytes) -> Any:
        return _decode(orjson.loads(data), self.state_type)


def encode_value(value: Any) -> bytes:
    """Serialise nested dataclasses/dicts/lists of numbers, strings and numpy arrays (used for
    detector states and reference profiles)."""
    return orjson.dumps(_encode(value))


def decode_value(data: bytes, type_: type | None = None) -> Any:
    return _decode(orjson.loads(data), type_)


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError("object arrays are not serialisable state; use lists of str")
        return {"__nd__": [value.dtype.str, list(value.shape),
                           b64encode(np.ascontiguousarray(value).tobytes()).decode()]}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, Mapping):
        return {"__map__": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any, type_: type | None = None) -> Any:
    if type_ is not None and dataclasses.is_dataclass(type_):
        hints = {f.name: f.type for f in dataclasses.fields(type_)}
        nested = {n: t for n, t in getattr(type_, "__nested__", {}).items()}
        return type_(**{k: _decode(v, nested.get(k)) for k, v in value.items() if k in hints})
    if isinstance(value, dict):
        if "__nd__" in value:
            dtype, shape, data = value["__nd__"]
            return np.frombuffer(b64decode(data), dtype=dtype).reshape(shape).copy()
        if "__float__" in value:
            return float(value["__float__"])
        if "__map__" in value:
            return {_decode(k): _decode(v) for k, v in value["__map__"]}
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value
