"""End-to-end ingest benchmark (a benchmark, not a test).

Defaults are the issue-11 headline: every default detector, a captured reference, 26 slices
(20 cameras, 3 regions, 2 groups + ``all``), 768-d float16 embeddings (base64), 10-class
softmax, confluent-kafka, the embedded Tansu broker and a real PostgreSQL
(``VITMON_DATABASE_URL`` if reachable, else a local server, else the embedded one).

It produces N events, captures a reference from another 20,000 events of the same traffic
(``vitmon reference capture --file``), runs ``vitmon run --exit-when-idle`` as a subprocess and
prints events/s end to end (partition assignment to the last checkpoint commit), events/s per
stage (the consumer's own stage clock: decode, slicing, observe per detector, state encode,
PostgreSQL, evaluation), peak RSS and ``window_states`` bytes per key (mean, max). Peak RSS
is the consumer's and its children's (``checkpoint.evaluate_workers``,
``kafka.decode_workers``) summed, sampled every 0.2 s (at least the consumer's own VmHWM), with
each part's peak beside it.

    nice -n 10 .venv/bin/python bench/ingest.py                    # the headline
    nice -n 10 .venv/bin/python bench/ingest.py --detectors traffic  # ingest cost only
    nice -n 10 .venv/bin/python bench/ingest.py --slices 1          # slice `all` only
    nice -n 10 .venv/bin/python bench/ingest.py --profile prof.svg  # py-spy (pip install py-spy)
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

import numpy as np
import orjson
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.core import kafka as kafka_io  # noqa: E402
from monitor.core.ingest.events import embedding_to_b64  # noqa: E402
from monitor.devstack.broker import EmbeddedBroker  # noqa: E402
from monitor.devstack.postgres import resolve_database  # noqa: E402
from monitor.store.db import check_database, create_database, normalise_url  # noqa: E402

COMMIT = re.compile(r"ts=(\S+)Z .*checkpoint committed accepted=(\d+)")
STARTED = re.compile(r"ts=(\S+)Z .*consumer assigned")
STAGES = re.compile(r"stage seconds ([^\"\n]*)")
ATTRS = {"camera_id": [f"cam-{i:02d}" for i in range(20)], "region": ["eu", "us", "apac"],
         "group": ["a", "b"]}
T0_MS = 1_767_225_600_000
REFERENCE_EVENTS = 20_000


def make_events(n: int, seed: int, dim: int, classes: int, span_ms: int, prefix: str,
                start_ms: int = T0_MS) -> list[bytes]:
    """``n`` valid prediction events of model ``vit-bench`` version ``1.0`` (JSON bytes) over
    ``[start_ms, start_ms + span_ms)``."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, dim)).astype(np.float16)
    logits = rng.normal(size=(n, classes)) * 2
    probs = np.exp(logits)
    probs /= probs.sum(1, keepdims=True)
    ts = start_ms + np.sort(rng.integers(0, span_ms, n))
    lat = rng.lognormal(3, 0.5, n)
    light = rng.random((n, 2))
    pick = {k: rng.integers(0, len(v), n) for k, v in ATTRS.items()}
    out = []
    for i in range(n):
        p = probs[i].round(5)
        ev = {"schema": "vit.prediction/v1", "event_id": f"{prefix}-{i}", "ts": int(ts[i]),
              "model": "vit-bench", "model_version": "1.0", "latency_ms": float(lat[i]),
              "status": "ok", "pred": int(p.argmax()), "probs": p.tolist(),
              "image": {"brightness": float(light[i, 0]), "contrast": float(light[i, 1]),
                        "width": 224, "height": 224},
              "attrs": {k: ATTRS[k][pick[k][i]] for k in ATTRS}}
        ev["embedding_b64"], ev["embedding_dtype"] = embedding_to_b64(emb[i], "f16")
        out.append(orjson.dumps(ev))
    return out


def against(this: ModuleType, path: str | None) -> dict[str, ModuleType]:
    """``{"this": this}`` and, given ``path`` (another copy of that module, e.g. ``git show
    REV:monitor/...py > /tmp/old.py``), ``"against"``: that copy, to time in alternation."""
    if not path:
        return {"this": this}
    spec = importlib.util.spec_from_file_location(f"against_{this.__name__.rpartition('.')[2]}",
                                                  path)
    other = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = other  # dataclasses look their module up
    spec.loader.exec_module(other)
    return {"against": other, "this": this}


def admin_url(tmp: Path) -> str:
    url = os.environ.get("VITMON_DATABASE_URL")
    if url and check_database(url) is None:
        return url
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    url, _ = resolve_database(local if check_database(local) is None else None, tmp / "pg")
    return url


def vitmon() -> str:
    return str(Path(sys.executable).with_name("vitmon"))


def event_chunks(n: int, dim: int, classes: int, span_ms: int,
                 chunk: int = 50_000) -> Iterator[list[bytes]]:
    """The benchmark's ``n`` events in chunks, in event-time order (chunk ``i`` covers its share
    of the span), so a million events are never all in this process's memory at once."""
    for i, lo in enumerate(range(0, n, chunk)):
        k = min(chunk, n - lo)
        part = make_events(k, 1 + i, dim, classes, max(span_ms * k // n, 1), f"ev{i}",
                           start_ms=T0_MS + span_ms * lo // n)
        yield part


def run_once(args: argparse.Namespace, bootstrap: str, chunks: Iterable[list[bytes]],
             ref_file: Path, admin: str, tmp: Path, broker_pid: int | None = None) -> dict:
    base = f"bench{uuid.uuid4().hex[:6]}"
    kafka_io.create_topics(args.client, bootstrap,
                           {f"{base}.pred": 3, f"{base}.labels": 3, f"{base}.dlq": 1})
    sink = kafka_io.make_sink(args.client, bootstrap)
    sizes = []
    for messages in chunks:
        for value in messages:
            sink.produce(f"{base}.pred", value, key=None)
        sizes.append(sum(map(len, messages)) / len(messages))
    sink.flush(300)
    sink.close()
    db = create_database(admin, base)
    sliced = "[]" if args.slices == 1 else "[" + ",".join(ATTRS) + "]"
    env = {**os.environ, "VITMON_KAFKA_BOOTSTRAP": bootstrap, "VITMON_DATABASE_URL": db,
           "VITMON_KAFKA_CLIENT": args.client, "VITMON_METRICS_PORT": "0",
           "VITMON_KAFKA__PREDICTIONS_TOPIC": f"{base}.pred",
           "VITMON_KAFKA__LABELS_TOPIC": f"{base}.labels", "VITMON_KAFKA__DLQ_TOPIC": f"{base}.dlq",
           "VITMON_SLICES__ATTRIBUTES": sliced}
    if args.detectors:
        env["VITMON_DETECTORS"] = args.detectors
    subprocess.run([vitmon(), "db", "upgrade"], env=env, check=True, capture_output=True)
    if not args.no_reference:
        subprocess.run([vitmon(), "reference", "capture", "--model", "vit-bench",
                        "--version", "1.0", "--file", str(ref_file)], env=env, check=True,
                       capture_output=True)
    cmd = [vitmon(), "run", "--exit-when-idle", str(args.idle_s)]
    if args.profile:
        fmt = "raw" if args.profile.endswith(".txt") else "flamegraph"  # raw: folded stacks
        cmd = ["py-spy", "record", "-o", args.profile, "-f", fmt, "--threads", "--nonblocking",
               "-r", "50", "--", *cmd]
    log = tmp / f"{base}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        hwm_kb, peak_kb, peak_kids_kb, rss = 0, 0, 0, []
        cpu: dict[int, float] = {}  # CPU seconds per process, as last seen
        # (time, the consumer's CPU s, the broker's): how busy each was over the measured span
        busy: list[tuple[datetime, float, float]] = []
        leaf = proc.pid
        while proc.poll() is None:
            # VmHWM: the consumer's own peak resident set; the total: VmRSS of the consumer and
            # its children (evaluation workers, multiprocessing's resource tracker), sampled
            leaf = _leaf(proc.pid)
            hwm_kb = max(hwm_kb, _status_kb(leaf, "VmHWM"))
            own = _status_kb(leaf, "VmRSS")
            below = _descendants(leaf)
            kids = sum(_status_kb(k, "VmRSS") for k in below)
            cpu.update({k: _cpu_s(k) for k in [leaf, *below]})
            peak_kb, peak_kids_kb = max(peak_kb, own + kids), max(peak_kids_kb, kids)
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            rss.append((now, own + kids))
            busy.append((now, cpu[leaf], _cpu_s(broker_pid) if broker_pid else 0.0))
            time.sleep(0.2)
    text_ = log.read_text()
    if args.keep_log:
        shutil.copyfile(log, args.keep_log)
    if proc.returncode != 0:
        raise SystemExit(f"vitmon run failed ({proc.returncode}): {text_[-3000:]}")
    commits = [(datetime.fromisoformat(m[0]), int(m[1])) for m in COMMIT.findall(text_)]
    accepted = sum(n for _, n in commits)
    started = datetime.fromisoformat(STARTED.findall(text_)[0])
    span = (commits[-1][0] - started).total_seconds()
    stages = {}
    for m in STAGES.findall(text_)[-1:]:
        stages = {k: float(v) for k, v in (kv.split("=") for kv in m.split())}
    return {"events": accepted, "eps": accepted / span, "span_s": span,
            "peak_rss_mb": max(peak_kb, hwm_kb) / 1024, "peak_own_mb": hwm_kb / 1024,
            "peak_children_mb": peak_kids_kb / 1024, "cpu_own_s": cpu.get(leaf, 0.0),
            "cpu_children_s": sum(v for k, v in cpu.items() if k != leaf), "stages": stages,
            "keys": _state_sizes(db), "busy": _busy(busy, started, commits[-1][0]),
            "rss_by_events": _rss_by_events(commits, rss), "message_bytes": float(np.mean(sizes))}


def _busy(samples: list[tuple[datetime, float, float]], start: datetime,
          end: datetime) -> tuple[float, float]:
    """CPU seconds of the consumer and of the broker between ``start`` and ``end`` (the
    measured span), from the 0.2 s samples nearest inside it: the consumer's share of one core
    tells whether the run was bound by its interpreter or waited on something else."""
    inside = [s for s in samples if start <= s[0] <= end]
    if len(inside) < 2:
        return math.nan, math.nan
    return inside[-1][1] - inside[0][1], inside[-1][2] - inside[0][2]


def _rss_by_events(commits: list[tuple[datetime, int]],
                   rss: list[tuple[datetime, int]], step: int = 200_000) -> list[tuple[int, float]]:
    """The resident set (MB, the consumer and its children) when it had committed 200k, 400k,
    ... events: flat if nothing it keeps grows with the stream (the last sample at or before
    each commit)."""
    out, total, mark = [], 0, step
    for at, n in commits:
        total += n
        if total >= mark:
            before = [kb for t, kb in rss if t <= at and kb]
            if before:
                out.append((total, before[-1] / 1024))
            while mark <= total:
                mark += step
    return out


def _state_sizes(db: str) -> dict:
    engine = create_engine(normalise_url(db))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT detector, count(*), avg(octet_length(state)), max(octet_length(state)), "
                "pg_total_relation_size('window_states') FROM window_states GROUP BY 1 "
                "ORDER BY 1")).all()
            pred = conn.execute(text(
                "SELECT count(*), sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE "
                "c.relname LIKE 'predictions%' AND c.relkind IN ('r', 'p')")).one()
    finally:
        engine.dispose()
    return {"per_detector": [(r[0], int(r[1]), float(r[2]), int(r[3])) for r in rows],
            "table_bytes": int(rows[0][4]) if rows else 0, "predictions_bytes": int(pred[1] or 0)}


def _leaf(pid: int) -> int:
    """The vitmon process itself when py-spy wraps it (its only child; vitmon's own children
    are its evaluation workers)."""
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "py-spy":
            return pid
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return int(kids[0]) if kids else pid
    except OSError:
        return pid


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the consumer's evaluation workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(k) for t in Path(f"/proc/{p}/task").iterdir()
                    for k in (t / "children").read_text().split()]
        except OSError:
            continue
        out += kids
        todo += kids
    return out


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, field: str) -> int:
    """A /proc/PID/status field in kB (VmHWM: peak resident set, VmRSS: the current one)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def report(args: argparse.Namespace, r: dict) -> None:
    size = r["message_bytes"]
    dets = args.detectors or "default set"
    print(f"\n{r['events']:,} events, detectors: {dets}, slices: {args.slices}, "
          f"reference: {'no' if args.no_reference else 'yes'}, {args.client}, "
          f"{args.dim}-d f16 embeddings, mean message {size:.0f} B")
    print(f"end to end: {r['eps']:,.0f} events/s ({r['span_s']:.1f} s), "
          f"peak RSS {r['peak_rss_mb']:.0f} MB (vitmon run and its children; its own "
          f"{r['peak_own_mb']:.0f} MB, the children's {r['peak_children_mb']:.0f} MB)")
    print(f"CPU: vitmon run {r['cpu_own_s']:.1f} s, its children (evaluation, decode workers) "
          f"{r['cpu_children_s']:.1f} s")
    own, broker = r["busy"]
    print(f"inside the measured span: vitmon run {own:.1f} CPU s ({own / r['span_s']:.0%} of one "
          f"core), the broker {broker:.1f} CPU s")
    if r["rss_by_events"]:
        print("RSS after " + ", ".join(f"{n / 1000:,.0f}k: {mb:,.0f} MB"
                                       for n, mb in r["rss_by_events"]) + " committed events")
    if r["stages"]:
        print(f"{'stage':<32} {'seconds':>8} {'events/s':>12}")
        for stage, s in sorted(r["stages"].items(), key=lambda kv: -kv[1]):
            print(f"{stage:<32} {s:>8.2f} {r['events'] / s if s else float('inf'):>12,.0f}")
    k = r["keys"]
    print(f"{'window_states by detector':<32} {'keys':>6} {'mean B':>9} {'max B':>9}")
    for det, n, mean, mx in k["per_detector"]:
        print(f"{det:<32} {n:>6} {mean:>9,.0f} {mx:>9,}")
    n_keys = sum(n for _, n, _, _ in k["per_detector"])
    if n_keys:
        print(f"window_states: {n_keys} keys, {k['table_bytes'] / n_keys:,.0f} B per key on disk "
              f"(table + indexes); predictions: {k['predictions_bytes'] / r['events']:,.1f} B "
              f"per stored prediction on disk")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--client", default="confluent-kafka",
                    choices=("confluent-kafka", "kafka-python"))
    ap.add_argument("--detectors", default="",
                    help="VITMON_DETECTORS for the run (default: every default detector)")
    ap.add_argument("--slices", type=int, choices=(1, 26), default=26,
                    help="26 = 20 cameras, 3 regions, 2 groups + all; 1 = all only")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--windows", type=int, default=12, help="5-minute windows the events span")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--idle-s", type=float, default=0.5,
                    help="vitmon run --exit-when-idle: the final flush (every window evaluated) "
                         "comes this long after the last records, and that wait is inside the "
                         "measured span, so it is short (it was 3 s before 2026-12-02)")
    ap.add_argument("--keep-log", metavar="PATH", help="copy the vitmon run log there")
    ap.add_argument("--profile", metavar="OUT.svg",
                    help="record the consumer with py-spy (OUT.txt: folded stacks, per thread)")
    args = ap.parse_args()
    if args.profile and shutil.which("py-spy") is None:
        raise SystemExit("--profile needs py-spy on PATH: .venv/bin/pip install py-spy")
    span = args.windows * 300_000
    print(f"generating {args.events:,} + {REFERENCE_EVENTS:,} reference events...", file=sys.stderr)
    with tempfile.TemporaryDirectory() as d, EmbeddedBroker() as broker:
        tmp = Path(d)
        ref_file = tmp / "reference.jsonl"
        ref_file.write_bytes(b"\n".join(make_events(REFERENCE_EVENTS, 2, args.dim, args.classes,
                                                    span, "ref")) + b"\n")
        chunks = event_chunks(args.events, args.dim, args.classes, span)
        r = run_once(args, broker.bootstrap, chunks, ref_file, admin_url(tmp), tmp,
                     broker.pid)
    report(args, r)


if __name__ == "__main__":
    main()
