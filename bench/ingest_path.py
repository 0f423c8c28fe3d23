"""The per-event ingest path in one process, without Kafka or PostgreSQL (a benchmark, not a test).

Decodes ``bench/ingest.py``'s events (768-d base64 f16 embeddings, 10-class softmax, 20
cameras x 3 regions x 2 groups, 12 five-minute windows) in polls of ``--poll`` records, names
their slices (26 = ``all`` + 25 attribute values) and observes them with every default
detector against a reference captured from 5,000 other events of the same traffic, the way a
checkpoint does (``WindowAssigner.observe``). Prints CPU microseconds per event per stage
(``time.process_time``: on a shared machine wall time mostly measures the neighbours); set
``OPENBLAS_NUM_THREADS=1`` so BLAS threads do not spin on the same CPU clock.

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/ingest_path.py
    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/ingest_path.py --slices 1
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/ingest_path.py --profile out.prof  # cProfile

What it leaves out, measured end to end by ``bench/ingest.py``: the PostgreSQL COPY of the
kept predictions, the intake (caps, dimension consensus), state encoding and merging, and the
evaluation of closed windows.
"""

from __future__ import annotations

import argparse
import cProfile
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import ATTRS, make_events  # noqa: E402

from detectors.reference import ProfileConfig, build_reference_profile  # noqa: E402
from monitor.app.config import Settings  # noqa: E402
from monitor.contract import Reference  # noqa: E402
from monitor.core.ingest import decode  # noqa: E402
from monitor.core.registry import load_detectors  # noqa: E402
from monitor.core.stages import StageClock  # noqa: E402
from monitor.core.windows import Deltas, WindowAssigner  # noqa: E402
from slices import SliceCatalog, dimensions  # noqa: E402

SPAN_MS = 12 * 300_000


class _Admitted:
    """Every version admitted with D = 768 (what the consumer's gate says once it is)."""

    def expected(self, model: str, version: str) -> int:
        return 768


def _records(values: list[bytes]) -> list[SimpleNamespace]:
    return [SimpleNamespace(topic="p", partition=i % 3, offset=i, key=None, value=v,
                            timestamp_ms=0) for i, v in enumerate(values)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--poll", type=int, default=20_000, help="records per decode call")
    ap.add_argument("--slices", type=int, choices=(1, 26), default=26)
    ap.add_argument("--profile", metavar="OUT.prof", help="write a cProfile of the run")
    args = ap.parse_args()
    print(f"generating {args.events:,} + 5,000 reference events...", file=sys.stderr)
    records = _records(make_events(args.events, 1, 768, 10, SPAN_MS, "ev"))
    ref_batch = decode.decode_predictions(_records(make_events(5_000, 2, 768, 10, SPAN_MS, "ref")),
                                          {}).batches["vit-bench"]
    reference = Reference("vit-bench", "1.0", 1, build_reference_profile([ref_batch],
                                                                         ProfileConfig()))
    settings = Settings()
    detectors = load_detectors(settings.detectors.enabled, settings.detector_params())
    dims = dimensions(tuple(ATTRS) if args.slices == 26 else ())
    assigner = WindowAssigner(detectors, dims, SliceCatalog(50), 300_000,
                              settings.detectors.slice_dimensions)
    clock = StageClock()
    time_module_clock = time.perf_counter
    time.perf_counter = time.process_time  # the stage clock reads CPU seconds
    deltas = Deltas()
    profiler = cProfile.Profile() if args.profile else None
    t0 = time.process_time()
    if profiler:
        profiler.enable()
    try:
        for lo in range(0, len(records), args.poll):
            with clock("decode"):
                out = decode.decode_predictions(records[lo:lo + args.poll], {}, gate=_Admitted())
            for batch in out.batches.values():
                with clock("slicing"):
                    labels = assigner.slice_labels(batch)
                assigner.observe(batch, labels, deltas, lambda m, v: reference, clock)
    finally:
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        time.perf_counter = time_module_clock
    total = time.process_time() - t0
    n = args.events
    print(f"{n:,} events in polls of {args.poll:,}, {args.slices} slices, {len(deltas.states):,} "
          f"state keys: {total / n * 1e6:.1f} CPU us/event ({n / total:,.0f} events/CPU-s)")
    print(f"{'stage':<28} {'CPU s':>7} {'us/event':>9}")
    for stage, seconds in sorted(clock.drain().items(), key=lambda kv: -kv[1]):
        print(f"{stage:<28} {seconds:>7.3f} {seconds / n * 1e6:>9.1f}")


if __name__ == "__main__":
    main()
