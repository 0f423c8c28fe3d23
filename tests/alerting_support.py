"""Helpers for the alerting integration tests: a config file, generated SLO traffic, and reads of
vitmon's alert history and Alertmanager's view."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from monitor.core.ingest.events import encode_prediction
from tests.support import query, run_cli

MODEL = "vit-tiny-digits"
SLOS = [
    {"name": "latency-250ms", "model": MODEL, "sli": "latency", "threshold_ms": 250,
     "objective": 0.99},
    {"name": "availability", "model": MODEL, "sli": "availability", "objective": 0.995},
]


def write_config(path: Path, **sections) -> Path:
    """A vitmon.yaml with the two SLOs the simulator's incidents are sized against, fast
    Alertmanager resends for tests, and any extra sections."""
    doc = {"slos": SLOS,
           "alertmanager": {"resend_interval_s": 2, "retry_initial_s": 0.5, "retry_max_s": 2,
                            "poll_s": 0.2},
           **sections}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def error_stream(start_ms: int, minutes: int, per_minute: int, bad_ratio: Callable[[int], float],
                 model: str = MODEL, version: str = "2026.11.1") -> list[tuple[bytes, bytes]]:
    """Events evenly spaced in event time; in minute m the first round(per_minute x
    bad_ratio(m)) are errors. Same structure as the simulator's events, without the ViT."""
    out = []
    for m in range(minutes):
        n_bad = round(per_minute * bad_ratio(m))
        for i in range(per_minute):
            ev = {"event_id": f"gen-{start_ms}-{m}-{i}",
                  "ts": start_ms + m * 60_000 + i * 60_000 // per_minute,
                  "model": model, "model_version": version, "latency_ms": 20.0 + i % 7}
            if i < n_bad:
                ev.update(status="error", error_code="UPSTREAM_UNAVAILABLE")
            else:
                ev.update(status="ok", pred=i % 10, confidence=0.9)
            out.append((version.encode(), encode_prediction(ev)))
    return out


def alerts_json(env: dict, *args: str) -> list[dict]:
    done = run_cli(env, "alerts", "--json", "--history", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def seen_in_alertmanager(am_alerts: list[dict]) -> set[tuple[str, str, str]]:
    return {(a["labels"]["alertname"], a["labels"]["severity"], a["labels"].get("subject", ""))
            for a in am_alerts}


def slo_ratio(db_url: str, slo: str, lo_ms: int, hi_ms: int) -> tuple[float, int]:
    """Bad ratio and event count of an SLO's buckets in [lo, hi)."""
    (good, total), = query(db_url, "SELECT coalesce(sum(good), 0), coalesce(sum(total), 0) FROM "
                           "slo_buckets WHERE slo = :s AND bucket_start_ms >= :lo AND "
                           "bucket_start_ms < :hi", s=slo, lo=lo_ms, hi=hi_ms)[0],
    good, total = int(good), int(total)  # sum(bigint) is numeric: Decimal
    return (1 - good / total if total else 0.0), total


def evaluated_to(db_url: str, slo: str) -> int:
    rows = query(db_url, "SELECT evaluated_to_ms FROM slo_progress WHERE slo = :s", s=slo)
    return rows[0][0] if rows else 0


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str) -> object:
    """Poll ``predicate`` every 0.5 s until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")
