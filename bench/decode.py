"""Decode throughput on one core: events/s of ``monitor.core.ingest.decode.decode_predictions``.

(a) 768-d float16 ``embedding_b64``, probs over 10 classes, 6 image stats, 5 attrs (target:
    >= 60,000 events/s); (b) the same with a 192-d JSON-list ``embedding``.

Also printed, for scale: the same records through ``orjson.loads`` plus the base64 decode alone
(the floor no validation can beat), so a slow or busy machine shows as a low floor. Timings are
process CPU time, best of ``--repeat``. Installing ``pybase64`` (used when present) cuts the
largest single cost of (a).

Run: ``.venv/bin/python bench/decode.py [--events N] [--batch B] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import orjson

from monitor.core.ingest.decode import B64_BACKEND, _b64decode, decode_predictions
from monitor.core.ingest.events import PREDICTIONS_TOPIC, embedding_to_b64, encode_prediction
from monitor.core.ingest.records import Record


def make_records(n: int, dim: int, b64: bool, seed: int = 0) -> list[Record]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 10))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    t0 = 1_767_225_600_000
    out = []
    for i in range(n):
        ev = {
            "event_id": f"evt-{seed}-{i:09d}", "ts": t0 + i * 7, "model": "vit-b16-retail",
            "model_version": "2026.11.3", "artifact_id": "sha256:0f3a9c", "latency_ms":
            float(rng.lognormal(3, 0.3)), "status": "ok", "pred": int(probs[i].argmax()),
            "probs": probs[i],
            "image": {"width": 224, "height": 224, "brightness": float(rng.random()),
                      "contrast": float(rng.random()), "saturation": float(rng.random()),
                      "sharpness": float(rng.random())},
            "attrs": {"camera_id": f"cam-{i % 40}", "region": "eu-west", "device": "jetson",
                      "customer_tier": "gold", "store": i % 17},
        }
        if b64:
            ev["embedding_b64"], ev["embedding_dtype"] = embedding_to_b64(emb[i], "f16")
        else:
            ev["embedding"] = emb[i]
        out.append(Record(PREDICTIONS_TOPIC, i % 3, i, b"2026.11.3", encode_prediction(ev), t0))
    return out


def best_of(repeat: int, run) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def bench(name: str, records: list[Record], batch: int, repeat: int) -> float:
    def run() -> None:
        dims: dict[str, int] = {}
        counts: dict[str, int] = {}
        accepted = 0
        for lo in range(0, len(records), batch):
            out = decode_predictions(records[lo:lo + batch], dims, counts)
            accepted += out.n_accepted
        assert accepted == len(records), out.rejected[:3]

    def floor() -> None:
        for r in records:
            d = orjson.loads(r.value)
            if "embedding_b64" in d:
                _b64decode(d["embedding_b64"])

    rate = len(records) / best_of(repeat, run)
    floor_rate = len(records) / best_of(repeat, floor)
    size = sum(len(r.value) for r in records) / len(records)
    print(f"{name:<32} {rate:>9,.0f} events/s   parse-only floor {floor_rate:>9,.0f}/s   "
          f"({size:,.0f} B/event, batch {batch})")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"base64 backend: {B64_BACKEND}; {args.events:,} events, one core")
    bench("(a) 768-d f16 embedding_b64", make_records(args.events, 768, True),
          args.batch, args.repeat)
    bench("(b) 192-d JSON-list embedding", make_records(args.events, 192, False),
          args.batch, args.repeat)


if __name__ == "__main__":
    main()
