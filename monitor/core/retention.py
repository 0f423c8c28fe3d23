"""Retention: predictions older than the label horizon are deleted, in small batches.

Predictions are kept only so late labels can join them. Past ``retention.label_horizon_s`` (in
event time, behind the highest event time the consumer has seen) a label can no longer join, so
the row goes. Each statement deletes at most ``batch_size`` rows found through the ``ts_ms``
index and addressed by ``ctid``: no table scan, short transactions, no long lock. Window states,
findings and the ingest totals are untouched, so counts and results survive pruning.

Two ways to run it: :class:`RetentionHook` prunes one batch inside a consumer checkpoint at most
every ``interval_s`` (in the checkpoint's transaction, so a rolled-back checkpoint prunes
nothing), and ``vitmon db prune`` prunes until nothing is left to prune.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from monitor.contract import Batch
from monitor.core.checkpoint import CheckpointResult
from monitor.core.settings import RetentionSettings
from monitor.store import offsets, predictions


@dataclass(frozen=True, slots=True)
class PruneResult:
    cutoff_ms: int | None
    deleted: int
    batches: int


def prune(engine: Engine, settings: RetentionSettings, before_ms: int | None = None,
          max_batches: int | None = None) -> PruneResult:
    """Delete every prediction older than ``before_ms`` (default: watermark - horizon), one
    batch per transaction."""
    with engine.connect() as conn:
        wm = offsets.max_watermark(conn)
    cutoff = before_ms if before_ms is not None else (
        None if wm is None else wm - settings.label_horizon_s * 1000)
    if cutoff is None:
        return PruneResult(None, 0, 0)
    deleted = batches = 0
    while max_batches is None or batches < max_batches:
        with engine.begin() as conn:
            n = predictions.delete_before(conn, cutoff, settings.batch_size)
        batches += 1
        deleted += n
        if n < settings.batch_size:
            break
    return PruneResult(cutoff, deleted, batches)


class RetentionHook:
    """A checkpoint hook that prunes one batch per ``interval_s`` (wall clock) of checkpoints.

    The cutoff follows the checkpoint's watermark (event time), so a replay of old traffic
    prunes relative to that traffic, not to today."""

    def __init__(self, settings: RetentionSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._last = float("-inf")
        self.deleted = 0

    def on_predictions(self, conn: Connection, batch: Batch) -> None:
        return None

    def before_commit(self, conn: Connection, result: CheckpointResult) -> None:
        now = self.clock()
        wm = result.watermark_ms
        if not self.settings.interval_s or now - self._last < self.settings.interval_s or not wm:
            return
        self._last = now
        self.deleted += predictions.delete_before(
            conn, wm - self.settings.label_horizon_s * 1000, self.settings.batch_size)


def hooks(settings: RetentionSettings) -> list[RetentionHook]:
    """The hooks the service runs for retention (none when ``interval_s`` is 0)."""
    return [RetentionHook(settings)] if settings.interval_s else []
