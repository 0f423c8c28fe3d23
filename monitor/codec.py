"""Serialisation of detector states and reference profiles: frozen dataclasses, mappings and
lists of numbers, strings and numpy arrays to JSON bytes and back, exactly (arrays keep their
dtype and shape, NaN and infinities survive). Part of the contract: detectors reach it as
``monitor.contract.DataclassStateCodec``. :func:`pack_value` is the same for large values (a
reference profile): arrays' bytes follow the JSON raw, not in base64. Imports only numpy and
orjson."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import orjson
from pybase64 import b64decode, b64encode, b64encode_as_string  # SIMD; stdlib's text


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


#: Starts what :func:`pack_value` writes (a zlib stream, the older reference format, starts 0x78).
PACKED = b"\x00vitmon-packed-1\n"
_LENGTH = 8  # bytes of the JSON part's length, little endian


def pack_value(value: Any) -> bytes:
    """What :func:`encode_value` writes, but each numpy array's bytes are stored raw after the
    JSON (which names its dtype, shape and offset), float arrays as float16 when that is exact
    (every element round-trips bit for bit): no base64 to decode, nothing to decompress.
    :func:`unpack_value` reads it back, the same value as :func:`decode_value` would.

    >>> x = {"a": np.arange(3.0), "b": (1, "c"), "c": np.array([0.1], np.float32)}
    >>> y = unpack_value(pack_value(x))
    >>> y["a"], y["a"].dtype, y["b"], bool(y["c"][0] == x["c"][0])
    (array([0., 1., 2.]), dtype('float64'), (1, 'c'), True)
    """
    raw: list[np.ndarray] = []
    head = orjson.dumps(_encode(value, raw))
    return b"".join([PACKED, len(head).to_bytes(_LENGTH, "little"), head,
                     *(a.tobytes() for a in raw)])


def unpack_value(data: bytes, type_: type | None = None) -> Any:
    """Read what :func:`pack_value` wrote."""
    if not data.startswith(PACKED):
        raise ValueError("not a packed value")
    start = len(PACKED) + _LENGTH
    end = start + int.from_bytes(data[len(PACKED):start], "little")
    return _decode(orjson.loads(data[start:end]), type_, memoryview(data)[end:])


def _pack_array(value: np.ndarray, raw: list[np.ndarray]) -> dict[str, Any]:
    stored = np.ascontiguousarray(value)
    if value.dtype.kind == "f" and value.dtype.itemsize > 2:
        with np.errstate(all="ignore"):
            narrow = stored.astype(np.float16)
        uint = np.dtype(f"u{value.dtype.itemsize}")
        if np.array_equal(narrow.astype(value.dtype).view(uint), stored.view(uint)):
            stored = narrow
    offset = sum(a.nbytes for a in raw)  # a profile has a few hundred arrays
    raw.append(stored)
    return {"__raw__": [value.dtype.str, list(value.shape), stored.dtype.str, offset]}


def _unpack_array(spec: list[Any], buf: memoryview) -> np.ndarray:
    dtype, shape, stored, offset = spec
    count = int(np.prod(shape, dtype=np.int64))
    a = np.frombuffer(buf, dtype=stored, count=count, offset=offset) if count else \
        np.zeros(0, stored)
    return a.astype(dtype).reshape(shape)  # a copy: writable, and not holding ``buf``


#: Field names per dataclass type: ``dataclasses.fields`` per value was a third of dumps' CPU.
_FIELDS: dict[type, tuple[str, ...]] = {}
#: Types written as they are (exact types: subclasses, e.g. numpy's float64, take the long way).
_PLAIN = frozenset({str, int, bool, type(None)})
_BUFFER_KINDS = frozenset("biufc")  # dtypes a memoryview exports (not datetime64, records)


def _encode(value: Any, raw: list[np.ndarray] | None = None) -> Any:
    """``value`` as orjson writes it: the exact types of states first (a dataclass seen before,
    plain values, a tuple of plain values, an array, a dict), each as :func:`_encode_any` would,
    so the bytes stay the same (``tests/test_codec.py``); the rest by :func:`_encode_any`."""
    kind = type(value)
    names = _FIELDS.get(kind)
    if names is not None:
        return {name: _encode(getattr(value, name), raw) for name in names}
    if kind in _PLAIN:
        return value
    if kind is tuple or kind is list:
        if _PLAIN.issuperset(map(type, value)):  # a loop in C
            return value  # orjson writes a tuple as an array, like the list it was
        return [_encode(v, raw) for v in value]
    if kind is float:
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if kind is np.ndarray and raw is None and value.dtype.kind in _BUFFER_KINDS:
        # a C-contiguous array is its own buffer: no ``tobytes`` copy
        return {"__nd__": [value.dtype.str, list(value.shape),
                           b64encode_as_string(value if value.flags.c_contiguous
                                               else np.ascontiguousarray(value))]}
    if kind is dict:
        return {"__map__": [[_encode(k, raw), _encode(v, raw)] for k, v in value.items()]}
    return _encode_any(value, raw)


def _encode_any(value: Any, raw: list[np.ndarray] | None) -> Any:
    if dataclasses.is_dataclass(value):
        if not isinstance(value, type):
            _FIELDS[type(value)] = tuple(f.name for f in dataclasses.fields(value))
        return {f.name: _encode(getattr(value, f.name), raw) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError("object arrays are not serialisable state; use lists of str")
        if raw is not None:
            return _pack_array(value, raw)
        return {"__nd__": [value.dtype.str, list(value.shape),
                           b64encode(np.ascontiguousarray(value).tobytes()).decode()]}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, Mapping):
        return {"__map__": [[_encode(k, raw), _encode(v, raw)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_encode(v, raw) for v in value]
    return value


#: Per dataclass type: its field names and the types of its ``__nested__`` fields.
_HINTS: dict[type, tuple[frozenset[str], dict[str, type]]] = {}


def _decode(value: Any, type_: type | None = None,
            raw: memoryview | None = None) -> Any:
    if type_ is not None:
        hints = _HINTS.get(type_)
        if hints is None and dataclasses.is_dataclass(type_):
            hints = _HINTS[type_] = (frozenset(f.name for f in dataclasses.fields(type_)),
                                     dict(getattr(type_, "__nested__", {})))
        if hints is not None:
            names, nested = hints
            return type_(**{k: _decode(v, nested.get(k), raw) for k, v in value.items()
                            if k in names})
    kind = type(value)
    if kind is dict:
        if "__nd__" in value:
            dtype, shape, data = value["__nd__"]
            return np.frombuffer(b64decode(data), dtype=dtype).reshape(shape).copy()
        if "__raw__" in value and raw is not None:
            return _unpack_array(value["__raw__"], raw)
        if "__float__" in value:
            return float(value["__float__"])
        if "__map__" in value:
            return {_decode(k, None, raw): _decode(v, None, raw) for k, v in value["__map__"]}
    elif kind is list:
        kinds = set(map(type, value))  # a loop in C
        if list not in kinds and dict not in kinds:
            return tuple(value)  # orjson's scalars decode to themselves
        return tuple(_decode(v, None, raw) for v in value)
    return value
