"""Value equality for detector states that hold numpy arrays.

A dataclass's generated ``__eq__`` compares arrays with ``==`` and fails on their truth value;
the contract suite and checkpoint tests need ``state == other`` to mean "same content".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

FLOAT_RTOL = 1e-9  # float sums (embedding moments) differ in the last bits with merge order


def deep_equal(a: Any, b: Any, rtol: float = 0.0) -> bool:
    """Equality of dataclasses, mappings (keys in order), sequences, arrays and scalars; float
    arrays and floats within ``rtol``. Lists and tuples compare equal (a checkpoint round trip
    turns one into the other)."""
    import numpy as np

    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(
            deep_equal(getattr(a, f.name), getattr(b, f.name), rtol) for f in dataclasses.fields(a))
    if isinstance(a, Mapping):
        return (isinstance(b, Mapping) and list(a) == list(b)
                and all(deep_equal(a[k], b[k], rtol) for k in a))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.dtype.kind == "f":
            return bool(np.allclose(a, b, rtol=rtol, atol=0.0, equal_nan=True))
        return bool(np.array_equal(a, b))
    if isinstance(a, (list, tuple)):
        return (isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(deep_equal(x, y, rtol) for x, y in zip(a, b, strict=True)))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or abs(a - b) <= rtol * max(abs(a), abs(b))
    return bool(a == b)


class ValueEquality:
    """Mixin for state dataclasses (declare them with ``eq=False``): content equality, floats
    within :data:`FLOAT_RTOL`."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return deep_equal(self, other, FLOAT_RTOL)

    __hash__ = None  # type: ignore[assignment]  # states hold arrays: unhashable
