"""The long fuzzing campaign on the decoder: atheris (libFuzzer, coverage-guided) over
``decode_predictions`` and ``decode_labels``, checked against the ``json.loads`` oracle.

Each input is one or more prediction or label messages (``tests/fuzz_check.py``'s Harness):
raw bytes that libFuzzer mutates freely, or structure-aware mutants of real seeds
(``tests/fuzz_mutators.py``). A crash is an exception escaping the decoder, a message neither
accepted nor rejected with a reason, or an accepted event whose columns differ from the oracle's.
The decoder and the oracle are instrumented, so coverage of either steers the search.

Run: ``.venv/bin/python bench/fuzz_decode.py --runs 1000000 --jobs 2`` (needs the ``bench``
extra: ``pip install -e '.[bench]'``). ``--jobs`` worker processes share one corpus directory and
split the runs; the last lines are the figure: inputs tried, crashes, seconds. A crashing
input is saved as ``crash-*`` in ``--artifacts`` (replay: ``--replay FILE``). ``--max-seconds``
(or Ctrl-C, or SIGINT to the workers) ends the campaign early with the figure so far.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INTERRUPTED = 72  # libFuzzer's exit code after SIGINT (it prints its final stats first)
sys.path.insert(0, str(ROOT))  # tests.* (the oracle and the harness) live beside bench/


def _harness(corpus: Path | None = None):
    """The harness over the seeds: from the corpus directory's seed files when given (workers:
    no second simulator run), else freshly built."""
    from tests.fuzz_check import Harness
    from tests.fuzz_corpus import MODES, seeds

    if corpus is None:
        return Harness(*seeds())
    files = [p.read_bytes() for p in sorted(corpus.glob("seed-*"))]
    return Harness([f[1:] for f in files if f[0] == MODES["prediction"]],
                   [f[1:] for f in files if f[0] == MODES["label"]])


def worker(args: argparse.Namespace) -> int:
    """One libFuzzer process: ``args.runs`` inputs over the shared corpus directory."""
    import atheris

    with atheris.instrument_imports(include=["monitor.core.ingest", "tests.fuzz_oracle"]):
        import monitor.core.ingest.decode  # noqa: F401
        import tests.fuzz_oracle  # noqa: F401
    harness = _harness(args.corpus)
    sys.setrecursionlimit(10_000)  # the oracle's json.loads reads as deep as orjson does
    limit = [f"-max_total_time={args.max_seconds}"] if args.max_seconds else []
    libfuzzer = [sys.argv[0], f"-runs={args.runs}", f"-seed={args.seed}", "-max_len=4096", *limit,
                 "-rss_limit_mb=3072", "-print_final_stats=1", "-timeout=30",
                 f"-artifact_prefix={args.artifacts}/", str(args.corpus)]
    atheris.Setup(libfuzzer, harness.run)
    atheris.Fuzz()
    return 0


def replay(path: Path) -> int:
    harness = _harness()
    harness.run(path.read_bytes())
    print(f"{path}: no crash ({harness.messages} messages, {harness.accepted} accepted)")
    return 0


def campaign(args: argparse.Namespace) -> int:
    from tests.fuzz_corpus import write_dir

    args.artifacts.mkdir(parents=True, exist_ok=True)
    before = set(args.artifacts.glob("crash-*"))
    n_seeds = write_dir(args.corpus)
    print(f"corpus {args.corpus}: {n_seeds} seed files; {args.jobs} jobs, {args.runs:,} runs",
          flush=True)
    share = [args.runs // args.jobs + (j < args.runs % args.jobs) for j in range(args.jobs)]
    t0 = time.monotonic()
    procs = []
    for j, runs in enumerate(share):
        log = open(args.artifacts / f"worker-{j}.log", "w")  # noqa: SIM115 - closed below
        cmd = [sys.executable, __file__, "--worker", "--runs", str(runs), "--seed",
               str(args.seed + j), "--corpus", str(args.corpus), "--artifacts",
               str(args.artifacts), "--max-seconds", str(args.max_seconds)]
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
    executed, failed, interrupted = 0, 0, 0
    for j, (proc, log) in enumerate(procs):
        try:
            rc = proc.wait()
        except KeyboardInterrupt:  # Ctrl-C: the workers got it too and print their stats
            rc = proc.wait()
        log.close()
        text = (args.artifacts / f"worker-{j}.log").read_text(errors="replace")
        units = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
        executed += int(units[-1]) if units else 0
        if rc == INTERRUPTED:
            interrupted += 1
        elif rc != 0:
            failed += 1
            print(f"worker {j} exited {rc}; see {args.artifacts}/worker-{j}.log", flush=True)
    seconds = time.monotonic() - t0
    crashes = sorted(set(args.artifacts.glob("crash-*")) - before)
    for path in crashes:
        print(f"crash: {path}")
    summary = {"inputs": executed, "crashes": len(crashes), "failed_workers": failed,
               "interrupted_workers": interrupted,
               "seconds": round(seconds, 1), "jobs": args.jobs, "seeds": n_seeds}
    print(f"inputs tried: {executed:,}")
    print(f"crashes: {len(crashes)}")
    print(f"seconds: {seconds:,.0f}")
    print(json.dumps(summary))
    return 1 if crashes or failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1_000_000, help="inputs in total")
    p.add_argument("--jobs", type=int, default=2, help="worker processes")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-seconds", type=int, default=0, help="stop each worker after this "
                   "long (0: when its runs are done)")
    p.add_argument("--corpus", type=Path, default=ROOT / ".vitmon" / "fuzz" / "corpus")
    p.add_argument("--artifacts", type=Path, default=ROOT / ".vitmon" / "fuzz")
    p.add_argument("--replay", type=Path, help="run one saved input and exit")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.replay:
        return replay(args.replay)
    if args.worker:
        return worker(args)
    return campaign(args)


if __name__ == "__main__":
    sys.exit(main())
