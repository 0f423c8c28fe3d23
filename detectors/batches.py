"""Building :class:`~monitor.contract.Batch` objects from plain columns.

Used where events arrive as arrays rather than from the consumer: reference capture from a file
or arrays (:func:`detectors.reference.build_reference_profile`), tests, doctests, benchmarks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from monitor.contract import Batch


def make_batch(n: int, rng: np.random.Generator | None = None, *,
               event_id: np.ndarray | None = None, latency_ms: np.ndarray | None = None,
               pred: np.ndarray | None = None, confidence: np.ndarray | None = None,
               probs: np.ndarray | None = None, embedding: np.ndarray | None = None,
               image: Mapping[str, np.ndarray] | None = None,
               attrs: Mapping[str, np.ndarray] | None = None, ts_ms: int = 0) -> Batch:
    """A :class:`Batch` of ``n`` ok events from the given columns.

    Absent columns: ids are random hex from ``rng`` (sequential without one), latency is
    log-normal around 20 ms from ``rng`` (0 without one), ``pred`` and ``confidence`` come from
    ``probs`` when given (else -1 / NaN), embeddings and probs are empty.
    """
    if event_id is None:
        event_id = (np.array([f"ev-{v:016x}" for v in rng.integers(0, 2**63, n)], dtype=object)
                    if rng is not None else np.array([f"ev-{i}" for i in range(n)], dtype=object))
    if latency_ms is None:
        latency_ms = rng.lognormal(3.0, 0.25, n) if rng is not None else np.zeros(n)
    probs = np.zeros((n, 0), np.float32) if probs is None else np.asarray(probs, np.float32)
    if pred is None:
        pred = probs.argmax(1) if probs.shape[1] else np.full(n, -1)
    if confidence is None:
        confidence = probs.max(1) if probs.shape[1] else np.full(n, np.nan)
    embedding = (np.zeros((n, 0), np.float32) if embedding is None
                 else np.asarray(embedding, np.float32))
    return Batch(
        event_id=np.asarray(event_id, dtype=object),
        ts_ms=np.full(n, ts_ms, dtype=np.int64),
        model=np.full(n, "vit", dtype=object),
        model_version=np.full(n, "1", dtype=object),
        latency_ms=np.asarray(latency_ms, np.float64),
        is_error=np.zeros(n, dtype=bool),
        pred=np.asarray(pred, np.int32),
        confidence=np.asarray(confidence, np.float32),
        probs=probs, has_probs=np.full(n, probs.shape[1] > 0),
        embedding=embedding, has_embedding=np.full(n, embedding.shape[1] > 0),
        image={k: np.asarray(v, np.float64) for k, v in (image or {}).items()},
        attrs={k: np.asarray(v, dtype=object) for k, v in (attrs or {}).items()},
    )


def concat(*batches: Batch) -> Batch:
    """Rows of several batches as one (columns absent from a batch are filled as missing)."""
    def col(get: Any, fill: Any, dtype: Any) -> np.ndarray:
        return np.concatenate([np.asarray(get(b)) if get(b) is not None
                               else np.full(len(b), fill, dtype=dtype) for b in batches])

    def wide(attr: str) -> np.ndarray:
        width = max(getattr(b, attr).shape[1] for b in batches)
        return np.concatenate([getattr(b, attr) if getattr(b, attr).shape[1] == width
                               else np.zeros((len(b), width), np.float32) for b in batches])

    image_keys = sorted({k for b in batches for k in b.image})
    attr_keys = sorted({k for b in batches for k in b.attrs})
    fields = {f.name: col(lambda b, n=f.name: getattr(b, n), None, object)
              for f in dataclasses.fields(Batch)
              if f.name not in {"probs", "embedding", "image", "attrs", "extras"}}
    return Batch(**fields, probs=wide("probs"), embedding=wide("embedding"),
                 image={k: col(lambda b, k=k: b.image.get(k), np.nan, np.float64)
                        for k in image_keys},
                 attrs={k: col(lambda b, k=k: b.attrs.get(k), None, object) for k in attr_keys})
