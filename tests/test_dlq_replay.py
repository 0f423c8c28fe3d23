"""``vitmon dlq replay`` against the real broker and PostgreSQL: rejected events re-published
to the input topic are decoded afresh, once (idempotent by ``event_id``)."""

from __future__ import annotations

import time

import pytest

from monitor.cli.main import main
from tests.support import make_topics, monitor_env, query
from tests.test_intake import CLIENT, T0, config, consume, event, publish

pytestmark = pytest.mark.integration


def replay(env: dict, since: str, monkeypatch, capsys) -> str:
    """``vitmon dlq replay`` in this process (a subprocess costs seconds of imports)."""
    with monkeypatch.context() as m:
        for name, value in env.items():
            if name.startswith("VITMON_"):
                m.setenv(name, value)
        assert main(["dlq", "replay", "--reason", "embedding_dim", "--since", since]) == 0
    return capsys.readouterr().out


def test_dlq_replay_after_the_dimension_is_set_right_is_idempotent(broker, db_url_factory,
                                                                   topic_names, tmp_path,
                                                                   monkeypatch, capsys):
    """A canary sent 30 events of 8 values first, so the consensus said 8 and the real 4-value
    events were rejected; once ``models.<m>.embedding_dim`` says 4, a replay re-publishes them
    for a fresh decode, and a second replay publishes nothing."""
    topics = make_topics(topic_names, CLIENT, broker.bootstrap, partitions=1)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    first = [event(i, T0 + i, 8, "cam-0", model="r", prefix="eight") for i in range(30)]
    later = [event(i, T0 + 100 + i, 4, "cam-0", model="r", prefix="four") for i in range(5)]
    publish(broker.bootstrap, topics.predictions, {0: first + later})
    db_url = db_url_factory()
    env = monitor_env(broker.bootstrap, db_url, topics, CLIENT, VITMON_DETECTORS="traffic")
    consume(env, tmp_path / "one.log")
    assert query(db_url, "SELECT dim FROM embedding_dims") == [(8,)]
    assert query(db_url, "SELECT count(*) FROM rejected_events WHERE reason = 'embedding_dim'"
                 )[0][0] == 5

    fixed = dict(env, VITMON_CONFIG=config(tmp_path, {"r": {"embedding_dim": 4}}))
    assert "re-published 5 events" in replay(fixed, since, monkeypatch, capsys)
    consume(fixed, tmp_path / "two.log")
    ids = {r.event_id for r in query(db_url, "SELECT event_id FROM predictions")}
    assert {f"four-{i}" for i in range(5)} <= ids and len(ids) == 35
    assert "re-published 0 events" in replay(fixed, since, monkeypatch, capsys)
