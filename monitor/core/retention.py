"""Retention: what is kept, for how long, and how it goes (``retention.*`` settings).

============== =========================================== =====================================
data           kept (0 = forever)                          removed by
============== =========================================== =====================================
predictions    ``label_horizon_s`` (14 d) of event time     ``DROP`` of whole day partitions
               behind the watermark: the label join window
window_states  ``allowed_lateness_s`` + ``window_states_s`` batched ``DELETE`` (evaluated states
               (7 d) of event time behind the watermark      only; findings keep the results)
findings       ``findings_s`` (365 d) of event time          batched ``DELETE``
rejected_events ``rejected_events_s`` (30 d) of wall time    batched ``DELETE``
============== =========================================== =====================================

Event-time cutoffs follow the highest watermark committed, so a replay of old traffic prunes
relative to that traffic, not to today; but they never count back from a time after the wall
clock, or one event stamped in the far future would prune everything (:func:`reference_ms`).
Each statement deletes at most ``batch_size`` rows found through an index and addressed by
``ctid`` (short transactions, no table scan). The ingest totals (``ingest_counts``) and alerts
are never pruned, so counts survive retention.

Two ways to run it: :class:`RetentionHook` prunes after a committed checkpoint, at most every
``interval_s``, one batch per table, each in its own short transaction (off the checkpoint's
transaction, so a checkpoint never waits on a ``DROP``); ``vitmon db prune`` prunes until
nothing is left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from monitor.core.checkpoint import CheckpointResult
from monitor.core.settings import RetentionSettings
from monitor.store import findings, offsets, predictions, rejected, window_states

log = logging.getLogger(__name__)
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class PruneResult:
    cutoff_ms: int | None  # the predictions' cutoff (event time)
    dropped: list[str] = field(default_factory=list)  # prediction partitions dropped
    deleted: dict[str, int] = field(default_factory=dict)  # table -> rows deleted
    batches: int = 0
    #: how far the highest committed watermark was ahead of the wall clock (0: not ahead)
    watermark_ahead_ms: int = 0


def reference_ms(watermark_ms: int | None, now_ms: int) -> int | None:
    """What the event-time cutoffs count back from: the highest committed watermark, but no
    later than the wall clock ``now_ms``.

    The decoder accepts timestamps up to the year 9999 (a producer's clock bug, a unit mix-up),
    and one such event raises its partition's watermark for good. Counted from it, every cutoff
    would pass every partition, window state and finding: one bad event would prune them all.
    A replay of old traffic (a watermark behind the clock) still prunes relative to itself.

    >>> reference_ms(253_402_214_399_999, now_ms=1_790_000_000_000)  # 9999-12-31
    1790000000000
    >>> reference_ms(1_700_000_000_000, now_ms=1_790_000_000_000), reference_ms(None, 0)
    (1700000000000, None)
    """
    return None if watermark_ms is None else min(watermark_ms, now_ms)


def cutoffs(settings: RetentionSettings, lateness_ms: int, watermark_ms: int | None,
            before_ms: int | None = None) -> dict[str, int | None]:
    """Event-time cutoff per table (None: keep); ``before_ms`` overrides the predictions'."""
    def behind(seconds: int) -> int | None:
        return None if watermark_ms is None or not seconds else watermark_ms - seconds * 1000

    pred = before_ms if before_ms is not None else behind(settings.label_horizon_s)
    states = behind(settings.window_states_s)
    return {"predictions": pred,
            "window_states": None if states is None else states - lateness_ms,
            "findings": behind(settings.findings_s)}


def prune(engine: Engine, settings: RetentionSettings, lateness_ms: int = 0,
          before_ms: int | None = None, max_batches: int | None = None,
          labels_topic: str | None = None, now_ms: int | None = None) -> PruneResult:
    """Apply every retention rule; up to ``max_batches`` DELETE batches per table. The watermark
    is the predictions' (``labels_topic``'s rows hold the labels' event time), capped at the
    wall clock (``now_ms``, default now)."""
    with engine.connect() as conn:
        wm = offsets.max_watermark(conn, labels_topic)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    ahead = 0 if wm is None else max(0, wm - now)
    cut = cutoffs(settings, lateness_ms, reference_ms(wm, now), before_ms)
    dropped: list[str] = []
    if cut["predictions"] is not None:
        with engine.begin() as conn:
            dropped = predictions.drop_partitions_before(conn, cut["predictions"])
    steps: dict[str, Callable] = {}
    if cut["window_states"] is not None:
        steps["window_states"] = lambda c, b: window_states.delete_before(c, cut["window_states"], b)
    if cut["findings"] is not None:
        steps["findings"] = lambda c, b: findings.delete_before(c, cut["findings"], b)
    if settings.rejected_events_s:
        steps["rejected_events"] = lambda c, b: rejected.delete_older(c, settings.rejected_events_s, b)
    deleted: dict[str, int] = {}
    batches = 0
    for table, step in steps.items():
        n_batches = 0
        while max_batches is None or n_batches < max_batches:
            with engine.begin() as conn:
                n = step(conn, settings.batch_size)
            n_batches += 1
            deleted[table] = deleted.get(table, 0) + n
            if n < settings.batch_size:
                break
        batches += n_batches
    return PruneResult(cut["predictions"], dropped, deleted, batches, ahead)


class RetentionHook:
    """After a committed checkpoint, at most every ``interval_s`` (wall clock): drop expired
    prediction partitions and delete one batch per table."""

    def __init__(self, engine: Engine, settings: RetentionSettings, lateness_ms: int,
                 clock: Callable[[], float] = time.monotonic,
                 labels_topic: str | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.engine, self.settings, self.lateness_ms = engine, settings, lateness_ms
        self.labels_topic = labels_topic
        self.clock, self.wall_clock = clock, wall_clock
        self._last = float("-inf")
        self._warned_ahead = False
        self.last: PruneResult | None = None

    def after_commit(self, result: CheckpointResult | None) -> None:
        now = self.clock()
        if not self.settings.interval_s or now - self._last < self.settings.interval_s:
            return
        self._last = now
        try:
            r = prune(self.engine, self.settings, self.lateness_ms, max_batches=1,
                      labels_topic=self.labels_topic, now_ms=int(self.wall_clock() * 1000))
        except Exception as exc:  # retention is housekeeping: the next interval tries again
            log.warning("retention failed error=%r", exc)
            return
        self.last = r
        # A simulator at --speedup runs hours ahead of the clock by design: warn past a day,
        # once until it falls back (the hook runs every interval_s).
        ahead = r.watermark_ahead_ms > DAY_MS
        if ahead and not self._warned_ahead:
            log.warning("retention counts back from the clock: the highest committed event "
                        "time is ahead of it (events stamped in the future?) ahead_days=%.1f",
                        r.watermark_ahead_ms / DAY_MS)
        self._warned_ahead = ahead
        if r.dropped or any(r.deleted.values()):
            log.info("retention dropped=%s deleted=%s", ",".join(r.dropped) or "-",
                     ",".join(f"{k}:{v}" for k, v in r.deleted.items()))


def hooks(engine: Engine, settings: RetentionSettings, lateness_ms: int,
          labels_topic: str | None = None) -> list[RetentionHook]:
    """The after-commit hooks the service runs for retention (none when ``interval_s`` is 0)."""
    return ([RetentionHook(engine, settings, lateness_ms, labels_topic=labels_topic)]
            if settings.interval_s else [])
