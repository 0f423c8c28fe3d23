"""The intake's settle step on one core: parked events decoded again from their bytes (what the
intake did before ``Parked.row``, and still does for events read back from ``parked_events``)
against settling them from the rows the decoder kept. Both ways alternate in one process, so
they share the machine's load. CPU microseconds per event (``time.process_time``).

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/intake_settle.py [--events N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import make_events  # noqa: E402

from monitor.core.ingest.decode import decode_predictions  # noqa: E402
from monitor.core.ingest.records import Record  # noqa: E402


class _Gate:
    def __init__(self, dim: int | None) -> None:
        self.dim = dim

    def expected(self, model: str, version: str) -> int | None:
        return self.dim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    values = make_events(args.events, 1, 768, 10, 3_600_000, "ev")
    records = [Record("p", i % 3, i, None, v, -1) for i, v in enumerate(values)]
    t = time.process_time()
    parked = decode_predictions(records, {}, gate=_Gate(None)).parked  # version not admitted
    print(f"load average {os.getloadavg()[0]:.1f}; {args.events:,} events, 768-d f16")
    print(f"polling thread, parking them: {(time.process_time() - t) / args.events * 1e6:.1f} "
          "CPU us/event")
    runs: dict[str, list[float]] = {"from bytes": [], "from kept rows": []}
    for _ in range(args.rounds):
        for name in runs:
            t = time.process_time()
            out = decode_predictions(parked, {}, gate=_Gate(768),
                                     decoded=parked if name == "from kept rows" else None)
            runs[name].append((time.process_time() - t) / args.events * 1e6)
            assert out.n_accepted == args.events
            del out
    for name, us in runs.items():
        us.sort()
        print(f"settle {name:<15} best {us[0]:.1f}, median {us[len(us) // 2]:.1f} CPU us/event")


if __name__ == "__main__":
    main()
