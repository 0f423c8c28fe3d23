"""``vitmon simulate`` and ``vitmon simulate-train``: argument parsing, pacing and the manifest.

The lead's ``monitor/cli.py`` wires :func:`add_arguments`/:func:`run` as ``vitmon simulate`` and
``simulator.options.add_train_arguments``/``simulator.train.run_train`` as ``vitmon
simulate-train``; ``python -m simulator`` runs the same parser standalone. Building the parser
imports no torch (every ``vitmon`` command builds it); :func:`run` imports the engine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from monitor.core.ingest.events import LABELS_TOPIC, PREDICTIONS_TOPIC
from simulator.scenarios import SCENARIOS
from simulator.sinks import FileSink, Sink, create_topics, kafka_sink

EXAMPLES = """\
examples:
  # the demo scenario into the broker in $VITMON_KAFKA_BOOTSTRAP, 6 h of traffic in 6 minutes
  vitmon simulate --scenario mixed --rate 5 --duration 21600 --speedup 60
  # three days of a slow error burn, written to a file as fast as possible
  vitmon simulate --scenario slow-burn --rate 1 --duration 259200 --out slow-burn.jsonl
  # a reproducible stream with kafka-python on private topics
  vitmon simulate --scenario bad-input --seed 3 --start 2026-11-01T00:00:00Z \\
      --client kafka-python --predictions-topic t1.pred --labels-topic t1.labels
  # retrain the packaged ViT weights (about 95 s on one core)
  vitmon simulate-train

scenarios:
""" + "\n".join(f"  {name:<18} {s.summary}" for name, s in SCENARIOS.items())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vitmon simulate``."""
    parser.description = "Publish traffic from a real small ViT, with scripted incidents."
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="steady")
    parser.add_argument("--rate", type=float, help="events per second of event time "
                        "(default: the scenario's recommendation)")
    parser.add_argument("--duration", type=float, help="event-time seconds to simulate "
                        "(default: the scenario's recommendation)")
    parser.add_argument("--speedup", type=float, default=1.0,
                        help="event time runs K times faster than the wall clock when pacing")
    parser.add_argument("--as-fast-as-possible", action="store_true",
                        help="do not pace; event times still follow --rate and --duration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", help="event time of the first event: RFC 3339 or epoch ms "
                        "(default: now, floored to the minute)")
    parser.add_argument("--out", type=Path, help="write JSONL to this file instead of Kafka "
                        "(never paced)")
    parser.add_argument("--manifest", type=Path, help="ground-truth manifest path (default: "
                        "FILE.manifest.json next to --out, else ./simulate-manifest.json)")
    parser.add_argument("--bootstrap", default=os.environ.get("VITMON_KAFKA_BOOTSTRAP"),
                        help="Kafka bootstrap servers (default: $VITMON_KAFKA_BOOTSTRAP)")
    parser.add_argument("--client", choices=["confluent-kafka", "kafka-python"],
                        default="confluent-kafka")
    parser.add_argument("--predictions-topic", default=PREDICTIONS_TOPIC)
    parser.add_argument("--labels-topic", default=LABELS_TOPIC)
    parser.add_argument("--partitions", type=int, default=3,
                        help="partitions of both topics when the simulator creates them")
    parser.add_argument("--embedding-format", choices=["b64", "list"], default="b64",
                        help="b64: embedding_b64 as little-endian f16; list: JSON numbers")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for inference")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--sample-store", type=Path, help="write every classified frame as a "
                        "PNG under this directory and point sample_uri at it (file://), so the "
                        "UI shows the images")


def parse_start(text: str | None) -> int:
    """``--start`` as epoch milliseconds.

    >>> parse_start("2026-11-01T00:00:00Z"), parse_start("1793491200000")
    (1793491200000, 1793491200000)
    """
    if text is None:
        return int(time.time() // 60 * 60_000)
    if text.isdigit():
        return int(text)
    return int(datetime.fromisoformat(text.replace("Z", "+00:00"))
               .astimezone(timezone.utc).timestamp() * 1000)


def _fail(message: str) -> int:
    print(f"vitmon simulate: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Run ``vitmon simulate``; returns the process exit code."""
    scenario = SCENARIOS[args.scenario]
    rate = scenario.recommended_rate if args.rate is None else args.rate
    duration = scenario.recommended_duration_s if args.duration is None else args.duration
    if rate <= 0 or duration <= 0 or args.speedup <= 0:
        return _fail("--rate, --duration and --speedup must be positive")
    try:
        start_ms = parse_start(args.start)
    except ValueError:
        return _fail(f"--start {args.start!r} is neither RFC 3339 nor epoch milliseconds")
    if args.out is None and not args.bootstrap:
        return _fail("no Kafka: pass --bootstrap, set VITMON_KAFKA_BOOTSTRAP, or use --out FILE")
    import torch  # here, not at import: `vitmon`'s parser is built from this module
    from tqdm import tqdm

    from simulator.engine import Simulation, default_models
    from simulator.manifest import build_manifest
    from simulator.messages import LABELS, PREDICTIONS, RunConfig

    torch.set_num_threads(args.threads)
    cfg = RunConfig(scenario, rate, duration, start_ms, args.seed, args.embedding_format,
                    sample_store=str(args.sample_store) if args.sample_store else None)
    models, meta = default_models()
    topics = {PREDICTIONS: args.predictions_topic, LABELS: args.labels_topic}
    if args.out is not None:
        sink: Sink = FileSink(args.out)
        sink_info: dict[str, Any] = {"type": "file", "path": str(args.out)}
        paced = False
    else:
        create_topics(args.client, args.bootstrap, {t: args.partitions for t in topics.values()})
        sink = kafka_sink(args.client, args.bootstrap)
        sink_info = {"type": "kafka", "client": args.client, "partitions": args.partitions}
        paced = not args.as_fast_as_possible
    sink_info["topics"] = topics
    sink_info["pacing"] = {"paced": paced, "speedup": args.speedup if paced else None}
    manifest_path = args.manifest or (args.out.with_suffix(".manifest.json") if args.out
                                      else Path("simulate-manifest.json"))
    sim = Simulation(cfg, models)
    expected = int(rate * duration)
    bar = tqdm(total=expected, unit="ev", file=sys.stderr, dynamic_ncols=True,
               disable=True if args.no_progress else None, desc=scenario.name)
    interrupted, lag_s = False, 0.0
    t0 = time.monotonic()
    try:
        for message in sim.messages():
            if paced:
                # Event time advances `speedup` times faster than the wall clock.
                ahead = message.publish_s / args.speedup - (time.monotonic() - t0)
                if ahead > 0.002:
                    time.sleep(ahead)
                lag_s = max(lag_s, -ahead)
            sink.send(topics[message.topic], message.key, message.value)
            if message.kind == "prediction":
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        sink.close()
    elapsed = time.monotonic() - t0
    weights = {"sha256": meta["weights_sha256"], "recipe_hash": meta["recipe_hash"],
               "heldout_accuracy": meta["heldout_accuracy"],
               "embedding_dim": meta["arch"]["width"]}
    manifest = build_manifest(cfg, sim.tally, sim.artifacts, weights, sink_info)
    manifest["interrupted"] = interrupted
    manifest_path.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    counts = manifest["counts"]
    print(f"simulate {scenario.name}: {counts['predictions']['published']} predictions, "
          f"{counts['labels']['published']} labels, {counts['malformed']['total']} malformed in "
          f"{elapsed:.1f} s ({counts['messages']['predictions_topic'] / max(elapsed, 1e-9):.0f} "
          f"msg/s{f', max lag {lag_s:.1f} s' if paced else ''}); manifest {manifest_path}",
          file=sys.stderr)
    return 130 if interrupted else 0
