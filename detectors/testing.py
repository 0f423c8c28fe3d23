"""Helpers to build batches, contexts and compare states in tests, doctests and benchmarks.

Plain constructors of the contract's dataclasses; nothing here is used by the service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detectors._equality import deep_equal
from detectors.batches import concat, make_batch
from monitor.contract import ALL_SLICE, EvalContext, Reference, StateKey

__all__ = ["concat", "context", "make_batch", "states_equal"]


def context(profile: Mapping[str, Any] | None, alpha: float = 0.01, n_tests: int = 1,
            min_samples: int = 30, slice: str = ALL_SLICE, window_start_ms: int = 0,
            look: int = 0) -> EvalContext:
    """An :class:`EvalContext` for model ``vit`` version ``1`` (no reference when ``profile`` is
    None); ``look`` counts earlier evaluations of the window."""
    key = StateKey("vit", "1", slice, window_start_ms, window_start_ms + 60_000)
    ref = None if profile is None else Reference("vit", "1", 1, profile)
    return EvalContext(key, ref, alpha, n_tests, min_samples, look)


def states_equal(a: Any, b: Any, rtol: float = 0.0) -> bool:
    """Deep equality of states (dataclasses, mappings, sequences, arrays); floats within
    ``rtol`` (0: exact). Sequences compare equal to tuples, as a checkpoint round trip turns
    lists into tuples."""
    return deep_equal(a, b, rtol)
