"""The intake's settle step on one core: parked events decoded again from their bytes (what the
intake did before ``Parked.row``, and still does for events read back from ``parked_events``)
against settling them from the rows the decoder kept; and before that, the polling thread's
decode of the same events for an admitted version and for one not admitted yet (parked). Both
ways alternate in one process, so they share the machine's load. Then the slice admission every
checkpoint runs (``TopKAdmission.begin``: counting the values of each capped attribute per
window; every window decided already, so no SQL) on the same events as one batch (12 windows).
CPU microseconds per event (``time.process_time``).

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

import numpy as np  # noqa: E402
from ingest import ATTRS, make_events  # noqa: E402

from monitor.core.ingest.decode import decode_predictions  # noqa: E402
from monitor.core.ingest.records import Record  # noqa: E402
from monitor.core.slice_admission import TopKAdmission  # noqa: E402


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
    print(f"load average {os.getloadavg()[0]:.1f}; {args.events:,} events, 768-d f16")
    polls: dict[str, list[float]] = {"admitted": [], "parked": []}  # the polling thread's decode
    for _ in range(args.rounds):
        for name in polls:
            t = time.process_time()
            out = decode_predictions(records, {}, gate=_Gate(768 if name == "admitted" else None))
            polls[name].append((time.process_time() - t) / args.events * 1e6)
    parked = out.parked  # the version not admitted
    runs: dict[str, list[float]] = {"from bytes": [], "from kept rows": []}
    for _ in range(args.rounds):
        for name in runs:
            t = time.process_time()
            out = decode_predictions(parked, {}, gate=_Gate(768),
                                     decoded=parked if name == "from kept rows" else None)
            runs[name].append((time.process_time() - t) / args.events * 1e6)
            assert out.n_accepted == args.events
            del out
    batches = list(decode_predictions(records, {}, gate=_Gate(768)).batches.values())
    admission = TopKAdmission(ATTRS, 20, 1, 300_000)
    admission._sets = {(a, int(w)): frozenset() for a in ATTRS  # decided: begin() runs no SQL
                       for b in batches for w in np.unique(b.ts_ms // 300_000 * 300_000)}
    counting: dict[str, list[float]] = {"begin": []}
    for _ in range(args.rounds):
        t = time.process_time()
        admission.begin(None, batches)
        counting["begin"].append((time.process_time() - t) / args.events * 1e6)
    for what, times in (("decode, version", polls), ("settle", runs),
                        ("slice admission", counting)):
        for name, us in times.items():
            us.sort()
            print(f"{what} {name:<15} best {us[0]:.1f}, median {us[len(us) // 2]:.1f} "
                  "CPU us/event")


if __name__ == "__main__":
    main()
