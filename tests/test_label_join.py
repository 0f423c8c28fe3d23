"""Late labels join their predictions whatever the order: before the prediction, days later,
twice (the last one wins), or for an event never seen."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from monitor.core.ingest.events import encode_label
from monitor.devstack.synthetic import synthetic_stream
from tests.support import install_plugin, make_topics, monitor_env, produce, query, start_monitor, status_json

pytestmark = pytest.mark.integration


def test_labels_join_in_any_order_and_last_label_wins(broker, db_url_factory, topic_names,
                                                      tmp_path):
    client = "confluent-kafka"
    messages, _, _ = synthetic_stream(4_000, seed=9, malformed_fraction=0,
                                      duplicate_fraction=0)
    events = [orjson.loads(v) for _, v in messages]
    rng = np.random.default_rng(4)
    n = len(events)
    order = rng.permutation(n)
    # The last fifth of the events never gets a label.
    early, late = order[: n // 5], order[n // 5: 4 * n // 5]
    relabel = late[: len(late) // 4]  # these get a second, different label later: it wins

    def label_of(i: int, second: bool = False) -> int:
        pred = events[i].get("pred", -1)
        correct = (i % 3 != 0) != second
        return int(pred if correct and pred >= 0 else (max(pred, 0) + 1) % 10)

    final = {int(i): label_of(int(i)) for i in np.concatenate([early, late])}
    final.update({int(i): label_of(int(i), second=True) for i in relabel})

    topics = make_topics(topic_names, client, broker.bootstrap)
    db_url = db_url_factory()
    env = monitor_env(broker.bootstrap, db_url, topics, client,
                      PYTHONPATH=str(install_plugin(tmp_path / "site")),
                      VITMON_DETECTORS="traffic,label_counts")

    def run(phase: str) -> None:
        # each phase's messages are all produced before its run, and the idle exit also needs
        # the committed offsets at the log end (asked of the broker): 1 s idle times the flush
        proc = start_monitor(env, "--exit-when-idle", "1", log=tmp_path / f"{phase}.log")
        assert proc.wait(300) == 0, (tmp_path / f"{phase}.log").read_text()[-2000:]

    # Phase 1: labels arrive before their predictions, plus labels of events never produced.
    produce(client, broker.bootstrap, topics.labels,
            [(None, encode_label(events[i]["event_id"], label_of(int(i)), events[i]["ts"]))
             for i in early] + [(None, encode_label(f"ghost-{j}", 1, 0)) for j in range(50)])
    run("labels-first")
    # Phase 2: the predictions, then labels for most of them.
    produce(client, broker.bootstrap, topics.predictions, messages)
    produce(client, broker.bootstrap, topics.labels,
            [(None, encode_label(events[i]["event_id"], label_of(int(i)), events[i]["ts"]))
             for i in late])
    run("predictions")
    # Phase 3: corrected labels for some events (days later, in event time): the last one wins.
    produce(client, broker.bootstrap, topics.labels,
            [(None, encode_label(events[i]["event_id"], label_of(int(i), True), events[i]["ts"]))
             for i in relabel])
    run("relabel")

    window_ms = 60_000
    expect: dict[tuple[str, int], list[int]] = {}
    for i, label in final.items():
        e = events[i]
        k = (e["model_version"], e["ts"] // window_ms * window_ms)
        agg = expect.setdefault(k, [0, 0])
        agg[0] += 1
        agg[1] += int(e.get("pred", -1) == label)
    rows = query(db_url, "SELECT model_version, window_start_ms, details FROM findings "
                         "WHERE detector = 'label_counts' AND slice = 'all'")
    got = {(r.model_version, r.window_start_ms): [r.details["labelled"], r.details["correct"]]
           for r in rows}
    assert got == expect
    # The core's EvalContext: n_tests is every slice of the detector in the window (not only
    # the re-evaluated ones), look the number of earlier evaluations of the same window.
    rows = query(db_url, "SELECT f.details, f.revision, (SELECT count(*) FROM window_states ws "
                         "WHERE ws.detector = f.detector AND ws.model = f.model "
                         "AND ws.model_version = f.model_version "
                         "AND ws.window_start_ms = f.window_start_ms) AS slices "
                         "FROM findings f WHERE f.detector = 'label_counts' "
                         "AND f.details->>'look' IS NOT NULL")
    assert rows and all(r.details["n_tests"] == r.slices > 1 for r in rows)
    assert all(r.details["look"] == r.revision - 1 for r in rows)
    assert max(r.details["look"] for r in rows) >= 1
    st = status_json(env)
    assert sum(m["labels_joined"] for m in st["models"]) == len(final)
