"""Synthetic batches and contexts for detector examples, doctests and the contract suite.

Beside the contract and importing nothing else of vitmon: third-party detector packages use
these to run the same contract suite as the built-ins (``tests/test_contract.py``). Pure: no I/O.
"""

from __future__ import annotations

import numpy as np

from monitor.contract import Batch, EvalContext, Reference, StateKey


def synthetic_batch(n: int = 100, seed: int = 0, *, n_classes: int = 10, dim: int = 16,
               error_rate: float = 0.0, model: str = "m", version: str = "1",
               t0_ms: int = 1_767_225_600_000, shift: float = 0.0) -> Batch:
    """A deterministic batch of ``n`` stationary events; ``shift`` moves image stats and
    embeddings (a drifted batch)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, n_classes))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    is_error = rng.random(n) < error_rate
    pred = np.where(is_error, -1, probs.argmax(axis=1)).astype(np.int32)
    conf = np.where(is_error, np.nan, probs.max(axis=1)).astype(np.float32)
    return Batch(
        event_id=np.array([f"{seed}-{i}" for i in range(n)], dtype=object),
        ts_ms=t0_ms + np.sort(rng.integers(0, 300_000, n)).astype(np.int64),
        model=np.full(n, model, dtype=object),
        model_version=np.full(n, version, dtype=object),
        latency_ms=rng.lognormal(np.log(20), 0.4, n),
        is_error=is_error,
        pred=pred,
        confidence=conf,
        probs=probs.astype(np.float32),
        has_probs=~is_error,
        embedding=(rng.normal(size=(n, dim)) + shift).astype(np.float32),
        has_embedding=np.ones(n, dtype=bool),
        image={"brightness": rng.normal(0.5 + shift * 0.1, 0.1, n),
               "contrast": rng.normal(0.2, 0.05, n)},
        attrs={"camera_id": rng.choice(np.array(["c1", "c2", "c3"], dtype=object), n)},
        extras={"batch_size": rng.choice(np.array([1.0, 4.0, 8.0]), n),
                "cold_start": (rng.random(n) < 0.01).astype(np.float64),
                "gpu_mem_mb": 1800.0 + 45.0 * rng.integers(1, 9, n),
                "gpu_util": np.round(rng.uniform(0.2, 0.6, n), 3),
                "error_code": np.where(is_error, "TIMEOUT", None).astype(object),
                "sample_uri": np.array([f"file:///samples/{seed}-{i}.png" for i in range(n)],
                                       dtype=object)},
    )


def make_context(reference: Reference | None = None, alpha: float = 0.01, n_tests: int = 1,
                 min_samples: int = 30) -> EvalContext:
    key = StateKey("m", "1", "all", 1_767_225_600_000, 1_767_225_900_000)
    return EvalContext(key, reference, alpha, n_tests, min_samples)
