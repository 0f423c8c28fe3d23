"""Throughput of the ViT traffic simulator itself, so benchmarks know who is the bottleneck.

Measures, on one torch thread:

* ``inference``: images/s of render + ViT forward + statistics in batches of 256 (no events);
* ``file``: events/s of the whole simulator writing JSONL (``--out``), split into the cold phase
  (every frame rendered and classified) and the warm phase (the frame pool is full);
* ``kafka-<client>``: events/s publishing as fast as possible to the broker in
  ``$VITMON_KAFKA_BOOTSTRAP``, or to an embedded Tansu broker started for the run.

    .venv/bin/python bench/simulator.py [--events 100000] [--results bench/results/simulator.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import cast

# Run as a script, this file's directory comes first on sys.path and its name would shadow the
# `simulator` package it measures.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from simulator.engine import Simulation, default_models  # noqa: E402
from simulator.images import LOOKS  # noqa: E402
from simulator.messages import PREDICTIONS, RunConfig  # noqa: E402
from simulator.pool import classify  # noqa: E402
from simulator.scenarios import SCENARIOS  # noqa: E402
from simulator.sinks import Client, FileSink, Sink, create_topics, kafka_sink  # noqa: E402

START_MS = 1_793_491_200_000


def bench_inference(models: dict, n: int = 4096) -> float:
    model = next(iter(models.values()))
    images = np.random.default_rng(0).integers(0, 450, n)
    gen = torch.Generator().manual_seed(0)
    classify(model, [LOOKS["studio"]] * 256, images[:256], gen)  # warm-up
    started = time.perf_counter()
    classify(model, [LOOKS["studio"]] * n, images, gen)
    return n / (time.perf_counter() - started)


def run_stream(models: dict, sink: Sink, events: int, topics: dict[str, str]) -> dict[str, float]:
    """Simulate ``events`` steady events into ``sink``; events/s overall, cold and warm."""
    rate = 50.0
    cfg = RunConfig(SCENARIOS["steady"], rate, events / rate, START_MS, seed=1)
    sim = Simulation(cfg, models)
    started = time.perf_counter()
    marks: list[tuple[int, int, float]] = []  # (predictions, frames rendered, seconds)
    sent = 0
    for message in sim.messages():
        sink.send(topics[message.topic], message.key, message.value)
        if message.topic == PREDICTIONS:
            sent += 1
            if sent % 2000 == 0:
                marks.append((sent, sim.pool.rendered, time.perf_counter() - started))
    sink.close()
    total = time.perf_counter() - started
    # The warm phase starts at the first mark after which no frame was rendered any more.
    warm = next((m for m in marks if m[1] == sim.pool.rendered), marks[-1])
    warm_rate = (sent - warm[0]) / max(total - warm[2], 1e-9) if sent > warm[0] else float("nan")
    return {"events": sent, "seconds": round(total, 2), "events_per_s": round(sent / total),
            "cold_events": warm[0], "cold_events_per_s": round(warm[0] / warm[2]),
            "warm_events_per_s": round(warm_rate), "frames_rendered": sim.pool.rendered}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--results", type=Path, default=Path("bench/results/simulator.json"))
    parser.add_argument("--clients", default="confluent-kafka,kafka-python")
    args = parser.parse_args()
    torch.set_num_threads(1)
    models, _ = default_models()
    results: dict[str, object] = {"threads": 1, "cpu_count": os.cpu_count()}
    results["inference_images_per_s"] = round(bench_inference(models))
    print(f"inference: {results['inference_images_per_s']} images/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.jsonl"
        results["file"] = run_stream(models, FileSink(out), args.events,
                                     {"predictions": "vit.predictions", "labels": "vit.labels"})
        results["file"]["mib"] = round(out.stat().st_size / 2**20, 1)
    print(f"file: {results['file']}", flush=True)
    with ExitStack() as stack:
        bootstrap = os.environ.get("VITMON_KAFKA_BOOTSTRAP")
        if not bootstrap:
            from monitor.devstack.broker import EmbeddedBroker  # bench only: the simulator never does

            bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap
        for client in cast(list[Client], args.clients.split(",")):
            topics = {"predictions": f"bench.{client}.{time.time_ns()}.pred",
                      "labels": f"bench.{client}.{time.time_ns()}.labels"}
            create_topics(client, bootstrap, {t: 3 for t in topics.values()})
            sink = kafka_sink(client, bootstrap)
            results[f"kafka-{client}"] = run_stream(models, sink, args.events, topics)
            print(f"kafka-{client}: {results[f'kafka-{client}']}", flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
