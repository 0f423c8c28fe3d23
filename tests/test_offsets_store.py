"""``consumer_offsets`` on the real PostgreSQL: what `vitmon status` reads for lag."""

from __future__ import annotations

import pytest

from monitor.store import offsets

pytestmark = pytest.mark.integration


def test_a_checkpoint_without_a_fresh_log_end_keeps_the_last_one(migrated_engine):
    """Log ends are read every few seconds, not per checkpoint; a checkpoint between two reads
    must not erase the last one (it did: a drained partition showed lag None, not 0)."""
    a, b = ("pred", 0), ("pred", 1)
    with migrated_engine.begin() as conn:
        offsets.save(conn, "g", {a: 40, b: 7}, {a: 1_000, b: 2_000}, {a: 50, b: 7})
    with migrated_engine.begin() as conn:
        offsets.save(conn, "g", {a: 50, b: 7}, {a: 1_100, b: 2_000}, {})  # no fresh read
    with migrated_engine.connect() as conn:
        rows = {(p["topic"], p["partition"]): p for p in offsets.partitions(conn, "g")}
    assert [(rows[tp]["committed_offset"], rows[tp]["high_watermark"], rows[tp]["lag"])
            for tp in (a, b)] == [(50, 50, 0), (7, 7, 0)]
    assert rows[a]["watermark_ms"] == 1_100
    with migrated_engine.begin() as conn:  # a fresh read moves it, read or not
        offsets.save(conn, "g", {a: 55}, {a: 1_200}, {a: 60, b: 9})
    with migrated_engine.connect() as conn:
        rows = {(p["topic"], p["partition"]): p for p in offsets.partitions(conn, "g")}
    assert [(rows[tp]["high_watermark"], rows[tp]["lag"]) for tp in (a, b)] == [(60, 5), (9, 2)]
