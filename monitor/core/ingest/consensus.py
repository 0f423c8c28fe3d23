"""Deciding a version's embedding dimension from evidence, not from one event. Pure.

The decoder parks the valid events of a (model, version) whose dimension D is unknown (no
``models.<m>.embedding_dim``, no active reference profile); the checkpoint stores them with
the offsets, counts their lengths across every process (``parked_events``) and asks
:func:`decide`. D is the most common length among the first ``events`` votes; before that many,
only once the first parked event waited ``wait_s`` (or the consumer flushes) and only with a
clear leader: at least ``min_agree`` votes and more than twice the runner-up's. One bad event
first -- or one per partition -- is outvoted; a version with a single event waits.

A canary is a new version of a model whose D is known: ``prior`` is the D decided last for
another version of the same model. A clear leader equal to it is decided at once, without the
wait, so a canary's first events are monitored from its first checkpoint instead of after
``wait_s`` or ``events`` votes. A leader of another length (a new backbone may change D) waits
as any new version does, so the prior can only speed up the length the evidence already
favours, never outvote it.

>>> decide({64: 994, 17: 6}, waited_s=0, flush=False, events=1000, wait_s=60, min_agree=3)
64
>>> decide({17: 1}, waited_s=3600, flush=True, events=1000, wait_s=60, min_agree=3) is None
True
>>> decide({64: 30, 17: 6}, waited_s=61, flush=False, events=1000, wait_s=60, min_agree=3)
64
>>> [decide(v, waited_s=0, flush=False, events=1000, wait_s=60, min_agree=3, prior=64)
...  for v in ({64: 3}, {64: 3, 17: 2}, {1024: 40}, {64: 2})]
[64, None, None, None]
"""

from __future__ import annotations

from collections.abc import Mapping


def decide(votes: Mapping[int, int], waited_s: float, flush: bool, events: int, wait_s: float,
           min_agree: int, prior: int | None = None) -> int | None:
    """The decided dimension, or None to keep waiting. Ties go to the smaller length."""
    if not votes:
        return None
    ranked = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))
    leader, top = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0
    if sum(votes.values()) >= events:
        return leader
    if (flush or waited_s >= wait_s or leader == prior) and top >= min_agree \
            and top > 2 * runner_up:
        return leader
    return None
