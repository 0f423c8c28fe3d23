"""A decision that rests on labels (fairness, a ``LabelDecision``) takes its decisive look once
the window's labels have settled, at a point of event time -- so the same stream gives the same
verdicts however many checkpoints (and so provisional looks) the reading speed makes."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.ingest.events import encode_label, encode_prediction
from tests.support import make_topics, monitor_env, produce, query, start_monitor

pytestmark = pytest.mark.integration

START_MS = 1_793_491_200_000  # 2026-11-01T00:00:00Z
N, SPAN_MS, SETTLE_S = 4_000, 20 * 60_000, 300


def _stream() -> tuple[list, list]:
    """20 minutes of predictions, group B right 75 % of the time and A 92 %; every label
    5-240 s after its prediction (all within the 300 s the test lets labels settle)."""
    rng = np.random.default_rng(12)
    ts = np.sort(START_MS + rng.integers(0, SPAN_MS, N))
    group = np.where(rng.random(N) < 0.35, "B", "A")
    label = rng.integers(0, 10, N)
    right = rng.random(N) < np.where(group == "B", 0.75, 0.92)
    pred = np.where(right, label, (label + 1 + rng.integers(0, 9, N)) % 10)
    ids = [f"settle-{i:05d}" for i in range(N)]
    preds = [(i.encode(), encode_prediction({
        "event_id": i, "ts": int(t), "model": "m", "model_version": "1", "latency_ms": 5.0,
        "status": "ok", "pred": int(p), "attrs": {"group": str(g)}}))
        for i, t, p, g in zip(ids, ts, pred, group)]
    at = ts + rng.integers(5_000, 240_000, N)
    labels = [(ids[j].encode(), encode_label(ids[j], int(label[j]), int(at[j])))
              for j in np.argsort(at, kind="stable")]  # published as they arrive
    return preds, labels


def test_fairness_verdicts_do_not_depend_on_how_often_the_consumer_checkpoints(
        broker, topic_names, db_url_factory, tmp_path):
    client = "confluent-kafka"
    topics = make_topics(topic_names, client, broker.bootstrap)
    preds, labels = _stream()
    produce(client, broker.bootstrap, topics.predictions, preds)
    produce(client, broker.bootstrap, topics.labels, labels)
    sql = ("SELECT window_start_ms, subject, status, p_value, revision, details FROM findings "
           "WHERE detector = 'fairness' ORDER BY 1, 2")
    runs = {}
    # Large checkpoints (few looks per window) and 50-record ones (a look per label batch).
    for name, records in (("large", "20000"), ("small", "50")):
        db_url = db_url_factory()
        env = monitor_env(broker.bootstrap, db_url, topics, client, VITMON_KAFKA__GROUP=name,
                          VITMON_DETECTORS="fairness", VITMON_SLICES__ATTRIBUTES="[]",
                          VITMON_WINDOWS__ALLOWED_LATENESS_S="0",
                          VITMON_WINDOWS__LABEL_SETTLE_S=str(SETTLE_S),
                          VITMON_FAIRNESS__ATTRIBUTES='["group"]', VITMON_ALERTS__RULES="[]",
                          VITMON_KAFKA__POLL_MAX_RECORDS=records,
                          VITMON_CHECKPOINT__MAX_EVENTS=records)
        proc = start_monitor(env, "--exit-when-idle", "2", log=tmp_path / f"{name}.log")
        assert proc.wait(600) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
        runs[name] = query(db_url, sql)

    large, small = runs["large"], runs["small"]
    assert len(large) >= 2 * 20  # 20 windows: the main finding and group B's
    # The small checkpoints looked at windows more often (provisional looks)...
    assert max(r.revision for r in small) > max(r.revision for r in large)
    # ...but every verdict is the decisive look's, on the window's settled labels, the same.
    assert all(r.details["labels_settled"] for r in large + small), [
        (name, r.window_start_ms, r.subject, r.revision, r.details.get("look"))
        for name, rows in runs.items() for r in rows if not r.details["labels_settled"]]
    verdict = lambda rows: [(r.window_start_ms, r.subject, r.status, r.p_value)  # noqa: E731
                            for r in rows]
    assert verdict(small) == verdict(large)
    flagged = [r for r in large if r.subject == "group=B" and r.status in ("warn", "alert")]
    print(f"\nlabel settle: {len(flagged)} of {sum(r.subject == 'group=B' for r in large)} "
          f"windows flag group B in both runs; most looks at one window: "
          f"{max(r.revision for r in large)} (large checkpoints), "
          f"{max(r.revision for r in small)} (50 records)")
    assert flagged
