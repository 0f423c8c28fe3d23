"""How a poll is split into decode requests, and the offsets a buffer covers (pure units).

A checkpoint may take the buffer while the rest of a poll is still in the decode worker; these
tests pin the bookkeeping that keeps exactly-once: each buffer starts where the last one ended,
per partition, whatever the split."""

from monitor.core.ingest.records import Record
from monitor.core.read_buffer import ReadBuffer, split_poll

PRED, LABELS = "pred", "labels"


def _rec(topic: str, partition: int, offset: int) -> Record:
    return Record(topic, partition, offset, None, b"{}", -1, ())


def test_a_poll_becomes_parts_of_at_most_chunk_predictions_with_the_labels_last():
    records = [_rec(PRED, 0, 10), _rec(LABELS, 0, 5), _rec(PRED, 1, 3), _rec(PRED, 0, 12),
               _rec(PRED, 1, 4), _rec(LABELS, 0, 6), _rec(PRED, 0, 13)]
    read = {(PRED, 0): 10, (PRED, 1): 2, (LABELS, 0): 5}
    parts = split_poll(records, read, LABELS, chunk=2)
    assert [[(r.partition, r.offset) for r in p.predictions] for p in parts] == [
        [(0, 10), (1, 3)], [(0, 12), (1, 4)], [(0, 13)]]
    assert [[r.offset for r in p.labels] for p in parts] == [[], [], [5, 6]]
    # the read position before each part's first record of a partition: offset 11 was never
    # fetched (compacted away), so the second part of partition 0 starts at 11, not 12
    assert [p.span for p in parts] == [
        {(PRED, 0): [10, 11], (PRED, 1): [2, 4]},
        {(PRED, 0): [11, 13], (PRED, 1): [4, 5]},
        {(PRED, 0): [13, 14], (LABELS, 0): [5, 7]}]
    assert [p.events for p in parts] == [2, 2, 3]
    assert read == {(PRED, 0): 14, (PRED, 1): 5, (LABELS, 0): 7}


def test_records_not_held_or_behind_the_read_position_are_skipped():
    read = {(PRED, 0): 7}
    parts = split_poll([_rec(PRED, 0, 6), _rec(PRED, 9, 1), _rec(PRED, 0, 7)], read, LABELS, 5)
    assert [(r.offset, p.span) for p in parts for r in p.predictions] == [
        (7, {(PRED, 0): [7, 8]})]
    assert read == {(PRED, 0): 8}
    assert split_poll([_rec(PRED, 0, 3)], read, LABELS, 5) == []


def test_a_poll_of_labels_only_is_one_part():
    (part,) = split_poll([_rec(LABELS, 1, 0), _rec(LABELS, 1, 1)], {(LABELS, 1): 0}, LABELS, 2)
    assert not part.predictions and [r.offset for r in part.labels] == [0, 1]
    assert part.span == {(LABELS, 1): [0, 2]} and part.events == 2


def test_a_buffer_taken_mid_poll_and_the_next_meet_at_the_same_offsets():
    records = [_rec(PRED, p, o) for o in range(100, 110) for p in (0, 1)]
    parts = split_poll(records, {(PRED, 0): 100, (PRED, 1): 95}, LABELS, chunk=6)
    first, second = ReadBuffer(), ReadBuffer()
    for p in parts[:2]:
        first.cover(p.span, p.events)
    for p in parts[2:]:
        second.cover(p.span, p.events)
    assert first.start == {(PRED, 0): 100, (PRED, 1): 95}
    assert first.next == second.start == {(PRED, 0): 106, (PRED, 1): 106}
    assert second.next == {(PRED, 0): 110, (PRED, 1): 110}
    assert (first.events, second.events) == (12, 8)
    (whole,) = split_poll(records, {(PRED, 0): 100, (PRED, 1): 95}, LABELS, chunk=len(records))
    assert whole.span == {(PRED, 0): [100, 110], (PRED, 1): [95, 110]}
    assert whole.predictions == records and whole.events == 20
