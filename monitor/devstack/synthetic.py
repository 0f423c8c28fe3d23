"""Synthetic Kafka traffic for the integration tests and the ingest benchmark: valid prediction
events, every kind of malformed message with the reason the decoder must give it, and duplicates,
with the ground truth to check a run against."""

from __future__ import annotations

import numpy as np

from monitor.core.ingest.events import embedding_to_b64, encode_prediction

MALFORMED_KINDS = {  # kind -> the reason code the decoder must give it
    "truncated_json": "malformed_json",
    "nan_latency": "non_finite",
    "missing_model": "missing_field",
    "latency_as_string": "wrong_type",
    "negative_latency": "bad_value",
    "wrong_embedding_dim": "embedding_dim",
    "oversized": "oversized",
    "bad_schema": "bad_schema",
    "bad_base64": "bad_value",
    "not_an_object": "malformed_json",
}


def synthetic_event(i: int, rng: np.random.Generator, *, t0_ms: int, span_ms: int, dim: int,
                    n_attrs: int, versions: tuple[str, ...], b64: bool) -> dict:
    probs = rng.dirichlet(np.ones(10))
    event = {
        "event_id": f"ev-{i}", "ts": int(t0_ms + rng.integers(0, span_ms)), "model": "vit-tiny",
        "model_version": versions[i % len(versions)], "latency_ms": float(rng.lognormal(3, 0.5)),
        "status": "ok", "pred": int(probs.argmax()), "probs": probs.round(5).tolist(),
        "image": {"brightness": float(rng.random()), "contrast": float(rng.random()),
                  "width": 224, "height": 224},
        "attrs": {f"a{j}": f"v{int(rng.integers(0, 5))}" for j in range(n_attrs)},
    }
    event["probs"][0] += 1.0 - sum(event["probs"])  # keep the sum exactly 1 after rounding
    if event["probs"][0] < 0:
        event["probs"] = (np.ones(10) / 10).tolist()
        event["pred"] = 0
    vec = rng.normal(size=dim).astype(np.float32)
    if b64:
        event["embedding_b64"], event["embedding_dtype"] = embedding_to_b64(vec, "f16")
    else:
        event["embedding"] = vec.round(4).tolist()
    if rng.random() < 0.02:
        event.update(status="error", error_code="TIMEOUT")
        for k in ("pred", "probs"):
            event.pop(k)
    return event


def malformed_event(kind: str, i: int, good: dict) -> bytes:
    bad = dict(good, event_id=f"bad-{i}")
    if kind == "truncated_json":
        return encode_prediction(bad)[:-7]
    if kind == "nan_latency":
        return encode_prediction(bad).replace(b'"latency_ms":', b'"latency_ms":NaN,"x":', 1)
    if kind == "missing_model":
        bad.pop("model")
    elif kind == "latency_as_string":
        bad["latency_ms"] = "12ms"
    elif kind == "negative_latency":
        bad["latency_ms"] = -3.0
    elif kind == "wrong_embedding_dim":
        bad.pop("embedding_b64", None)
        bad["embedding"] = [0.5] * 7
    elif kind == "oversized":
        bad["attrs"] = {"blob": "x" * (1 << 20)}
    elif kind == "bad_schema":
        bad["schema"] = "vit.prediction/v0"
    elif kind == "bad_base64":
        bad.pop("embedding", None)
        bad["embedding_b64"], bad["embedding_dtype"] = "!!not base64!!", "f16"
    elif kind == "not_an_object":
        return f"[{i}, 2, 3]".encode()
    return encode_prediction(bad)


def synthetic_stream(n: int, seed: int = 0, *, malformed_fraction: float = 0.02,
                     duplicate_fraction: float = 0.01, dim: int = 16, n_attrs: int = 3,
                     versions: tuple[str, ...] = ("1.0", "1.1"), window_ms: int = 60_000,
                     n_windows: int = 20, t0_ms: int = 1_767_225_600_000, b64: bool = True):
    """Messages ``[(key, value)]`` plus ground truth: accepted counts per
    (model, version, window_start) and the expected reason per malformed message, keyed by the
    sha256 of its bytes (many malformed messages have no readable event_id)."""
    import hashlib

    # Null message keys spread events over all partitions (keys by model_version would put the
    # two versions on at most two partitions), so partition-assignment tests see every one.
    prediction_key = lambda _event: None  # noqa: E731

    rng = np.random.default_rng(seed)
    kinds = list(MALFORMED_KINDS)
    messages: list[tuple[bytes | None, bytes]] = []
    counts: dict[tuple[str, str, int], int] = {}
    reasons: dict[str, str] = {}
    good_ids: list[tuple[bytes | None, bytes]] = []
    for i in range(n):
        ev = synthetic_event(i, rng, t0_ms=t0_ms, span_ms=window_ms * n_windows, dim=dim,
                             n_attrs=n_attrs, versions=versions, b64=b64)
        if rng.random() < malformed_fraction:
            kind = kinds[len(reasons) % len(kinds)]
            raw = malformed_event(kind, i, ev)
            reasons[hashlib.sha256(raw).hexdigest()] = MALFORMED_KINDS[kind]
            messages.append((prediction_key(ev), raw))
            continue
        msg = (prediction_key(ev), encode_prediction(ev))
        messages.append(msg)
        good_ids.append(msg)
        w = ev["ts"] // window_ms * window_ms
        k = (ev["model"], ev["model_version"], w)
        counts[k] = counts.get(k, 0) + 1
        if rng.random() < duplicate_fraction:  # re-sent later: must count once
            messages.append(good_ids[int(rng.integers(0, len(good_ids)))])
    return messages, counts, reasons
