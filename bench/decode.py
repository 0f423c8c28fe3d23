"""Decode cost on the polling thread: CPU microseconds per event of
``monitor.core.ingest.decode.decode_predictions``, on ``bench/ingest.py``'s events (768-d float16
``embedding_b64``, 10-class probs, 4 image stats, 3 attrs; ~2.5 kB each) in polls of ``--poll``.

Cases: ``admitted`` (the consumer's steady state: a gate that knows the version's D),
``parked`` (the version not admitted yet: every event parked), ``offline`` (no gate, D and C
learnt: reference capture, the JSONL reader) and ``list`` (the same without a gate, a 192-d
JSON-list ``embedding``). Also printed, for scale: ``orjson.loads`` plus the base64 decode alone
(the floor no validation can beat). ``worker``: the ``admitted`` polls decoded by the decode
worker (``monitor.core.decode_pool``, ``kafka.decode_workers=1``): this process's CPU only, i.e.
what stays on the consumer's GIL (columns into shared memory, the answer copied out and
unpickled; requests of ``CHUNK`` records, two in flight, as the consumer sends them); the
worker's own CPU is printed beside it. Timings are process CPU time per event, best and median of
``--rounds``; with ``--against`` another copy of the module (e.g. main's) is timed too, the two
alternating within each round so that they share the machine's load:

    git show main:monitor/core/ingest/decode.py > /tmp/old_decode.py
    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/decode.py --against /tmp/old_decode.py

When the fast path's module differs too, give its old copy as well (``--against-fast``): the old
decoder then uses it rather than this tree's ``fast_decode``::

    git show main:monitor/core/ingest/fast_decode.py > /tmp/old_fast_decode.py
    ... bench/decode.py --against /tmp/old_decode.py --against-fast /tmp/old_fast_decode.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import against, make_events  # noqa: E402

from monitor.core.decode_pool import DecodePool  # noqa: E402
from monitor.core.ingest import decode, fast_decode  # noqa: E402
from monitor.core.ingest.records import Record  # noqa: E402

CASES = ("admitted", "parked", "offline", "list", "worker")


class _Gate:
    def __init__(self, dim: int | None) -> None:
        self.dim = dim

    def expected(self, model: str, version: str) -> int | None:
        return self.dim


def _records(values: list[bytes]) -> list[Record]:
    return [Record("vit.predictions", i % 3, i, None, v, -1) for i, v in enumerate(values)]


def _as_list(value: bytes) -> bytes:
    """The event with a 192-d JSON-list ``embedding`` instead of its base64 one."""
    d = orjson.loads(value)
    del d["embedding_b64"], d["embedding_dtype"]
    d["embedding"] = [round((i * 37 % 101) / 50 - 1, 4) for i in range(192)]
    return orjson.dumps(d)


def _worker(polls: list[list[Record]]) -> tuple[float, float]:
    """CPU seconds of this process (and of the worker) to decode every poll in the worker."""
    pool = DecodePool(1)
    pool.start()
    try:
        pool.submit(polls[0][:10], {})  # the worker has started and imported
        pool.result()
        (pid,) = pool.pids()
        w0, t = _cpu(pid), time.process_time()
        n = 0
        for poll in polls:
            for lo in range(0, len(poll), pool.chunk):
                if pool.full:
                    n += _taken(pool.result())
                pool.submit(poll[lo:lo + pool.chunk], {("vit-bench", "1.0"): 768})
        while pool.pending:
            n += _taken(pool.result())
        assert n == sum(map(len, polls))
        return time.process_time() - t, _cpu(pid) - w0
    finally:
        pool.close()


def _taken(out) -> int:
    assert not out.rejected and not out.parked
    return out.n_accepted


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(module, case: str, polls: list[list[Record]]) -> float:
    """CPU seconds to decode every poll as the case says; checks nothing was rejected."""
    gate = {"admitted": _Gate(768), "parked": _Gate(None)}.get(case)
    dims: dict[str, int] = {}
    n = 0
    t = time.process_time()
    for poll in polls:
        out = (module.decode_predictions(poll, {}, gate=gate) if gate is not None else
               module.decode_predictions(poll, dims, {}))
        n += out.n_accepted + len(out.parked)
        assert not out.rejected, out.rejected[:2]
        del out
    took = time.process_time() - t
    assert n == sum(map(len, polls))
    return took


def _floor(records: list[Record]) -> float:
    t = time.process_time()
    for r in records:
        d = orjson.loads(r.value)
        decode._b64decode(d["embedding_b64"])
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--poll", type=int, default=20_000, help="records per decode call "
                    "(the consumer's kafka.poll_max_records)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cases", default=",".join(CASES), help=f"some of {','.join(CASES)}")
    ap.add_argument("--against", help="another copy of monitor/core/ingest/decode.py")
    ap.add_argument("--against-fast", help="the copy of monitor/core/ingest/fast_decode.py "
                    "that --against's decoder uses (default: this tree's)")
    args = ap.parse_args()
    cases = args.cases.split(",")
    records = _records(make_events(args.events, 1, 768, 10, 3_600_000, "ev"))
    lists = _records([_as_list(r.value) for r in records]) if "list" in cases else []
    polls = {c: [(lists if c == "list" else records)[lo:lo + args.poll]
                 for lo in range(0, args.events, args.poll)] for c in cases}
    modules = against(decode, args.against)
    if args.against and args.against_fast:
        old_fast = against(fast_decode, args.against_fast)["against"]
        modules["against"].fast_decode = old_fast
        modules["against"].FastRows = old_fast.FastRows
    size = sum(len(r.value) for r in records) / len(records)
    print(f"load average {os.getloadavg()[0]:.1f}; {args.events:,} events ({size:,.0f} B each), "
          f"polls of {args.poll:,}, base64 {decode.B64_BACKEND}, {args.rounds} rounds")
    times: dict[tuple[str, str], list[float]] = {}
    floor, in_worker = [], []
    for _ in range(args.rounds):
        for case in cases:
            if case == "worker":
                own, theirs = _worker(polls["admitted" if "admitted" in polls else case])
                times.setdefault((case, "this"), []).append(own / args.events * 1e6)
                in_worker.append(theirs / args.events * 1e6)
                continue
            for name, module in modules.items():
                us = _run(module, case, polls[case]) / args.events * 1e6
                times.setdefault((case, name), []).append(us)
        floor.append(_floor(records) / args.events * 1e6)
    for (case, name), us in times.items():
        us.sort()
        print(f"{case:<9} {name:<8} best {us[0]:5.1f}  median {us[len(us) // 2]:5.1f} "
              "CPU us/event")
    if in_worker:
        in_worker.sort()
        print(f"worker    (its own CPU) best {in_worker[0]:5.1f}  median "
              f"{in_worker[len(in_worker) // 2]:5.1f} CPU us/event")
    floor.sort()
    print(f"floor (orjson.loads + base64 decode only) best {floor[0]:.1f}  "
          f"median {floor[len(floor) // 2]:.1f} CPU us/event")


if __name__ == "__main__":
    main()
