"""When a label-based window's labels have settled, and the look index each evaluation spends
``alpha`` at (:class:`monitor.contract.LabelDecision`; checkpoint step 6).

A fairness window used to spend ``0.9 alpha`` at its first evaluation, at window close, when
labels trail by minutes, and ``0.1 alpha / 2**k`` at each later one: its verdict on the final
labels was taken at a share set by how many checkpoints the reading speed made. Here the
decisive look (index 0) is scheduled by event time instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.store.keys import TopicPartition

NOTHING_SETTLED = -(2**62)  # a window end no window has


def settled_until(watermarks: Mapping[TopicPartition, int], idle: frozenset[TopicPartition],
                  labels_topic: str | None, settle_ms: int, lateness_ms: int) -> int:
    """The last window end whose labels have settled, from per-partition watermarks (highest
    event time read): every labels partition ``settle_ms`` past it and every predictions
    partition past it + ``lateness_ms`` (its predictions are in). A partition read to its log
    end (``idle``) holds nothing back; one with records left does, even before its first
    (event time 0). With every partition of a topic idle, its latest event time counts.
    :data:`NOTHING_SETTLED` before both topics have had data.

    >>> wm = {("p", 0): 1000, ("p", 1): 900, ("l", 0): 950, ("l", 1): 0}
    >>> settled_until(wm, frozenset(), "l", 100, 10) == NOTHING_SETTLED  # l[1] not read yet
    True
    >>> settled_until(wm, frozenset({("l", 1)}), "l", 100, 10)  # l[1] is empty
    850
    """
    labels = slowest(watermarks, idle, labels_topic, labels=True)
    preds = slowest(watermarks, idle, labels_topic, labels=False)
    if labels is None or preds is None:
        return NOTHING_SETTLED
    return min(labels - settle_ms, preds - lateness_ms)


def slowest(watermarks: Mapping[TopicPartition, int], idle: frozenset[TopicPartition],
            labels_topic: str | None, labels: bool) -> int | None:
    """The event time every partition of one topic (the labels topic, or the predictions
    topics) has reached: the lowest highest-event-time among its partitions with records left to
    read; a partition read to its log end (``idle``) holds nothing back, and with every one idle
    the topic's latest event time counts. None while a partition with records left has not been
    read yet (event time 0), or the topic has no partition.

    >>> wm = {("p", 0): 1000, ("p", 1): 900, ("l", 0): 950}
    >>> slowest(wm, frozenset(), "l", labels=False), slowest(wm, frozenset({("p", 1)}), "l", False)
    (900, 1000)
    """
    tps = [tp for tp in watermarks if (tp[0] == labels_topic) == labels]
    busy = [watermarks[tp] for tp in tps if tp not in idle]
    if busy:
        return min(busy) or None
    return max((watermarks[tp] for tp in tps), default=0) or None


def look_index(earlier: int, label_based: bool, settled: bool, decided: bool) -> int:
    """The look index a window's evaluation spends ``alpha`` at
    (:func:`detectors._verdict.look_alpha`: 0 takes ``0.9 alpha``, ``k >= 1`` takes
    ``0.1 alpha / 2**k``); ``earlier`` = its earlier evaluations, ``settled`` = its labels have
    settled now, ``decided`` = an earlier look was the decisive one.

    A detector that decides on events: its first evaluation (window close) is look 0. One that
    decides on labels: look 0 is the first evaluation once the window's labels settled, and any
    other is ``earlier + 1`` -- an index no other evaluation of the window takes, so over all
    looks the shares still sum to less than ``alpha`` whatever their number (issue 12), while
    the decisive look's share and data do not depend on how many checkpoints came before it.

    >>> look_index(0, False, False, False), look_index(3, False, True, False)
    (0, 3)
    >>> [look_index(k, True, k == 2, k > 2) for k in range(5)]
    [1, 2, 0, 4, 5]
    """
    if not label_based:
        return earlier
    return 0 if settled and not decided else earlier + 1
