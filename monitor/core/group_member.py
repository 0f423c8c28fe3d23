"""The consumer's side of the consumer-group protocol: the :class:`~monitor.core.kafka.Rebalance`
listener (claim on assignment, drop on revocation or loss) and what a fence does. A mixin of
:class:`monitor.core.consumer.Consumer`, kept apart so the consume loop reads on its own."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import wait
from typing import TYPE_CHECKING, Any

from monitor.core.held import names
from monitor.errors import Fenced
from monitor.store import offsets
from monitor.store.keys import TopicPartition

if TYPE_CHECKING:
    from monitor.core.checkpoint import CheckpointInput

log = logging.getLogger("monitor.core.consumer")


class GroupMember:
    """Needs the consumer's ``kafka``, ``engine``, ``source``, ``metrics``, ``health``,
    ``held``, ``log_ends``, ``owner``, ``_buf``, ``_paused``, ``_mirror`` and ``_retry``."""

    kafka: Any
    engine: Any
    source: Any
    metrics: Any
    health: Any
    held: Any
    owner: str
    _buf: Any
    log_ends: Any
    _paused: list[TopicPartition]
    _hold_until: float | None = None  # taking no records until then (or the harvest): _pause
    _mirror: dict[TopicPartition, int]
    _idle_since: float

    def _retry(self, fn: Any, what: str) -> Any:
        raise NotImplementedError

    def _new_buffer(self) -> Any:
        raise NotImplementedError

    # -- the group's Rebalance listener (called from inside source.poll) ----------------------
    def assigned(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self._idle_since = time.monotonic()
        self._paused = []  # a new assignment fetches every partition
        return self._claim(tps)

    def revoked(self, tps: list[TopicPartition]) -> None:
        """An orderly rebalance: the checkpoint in flight may still commit (this process is the
        owner until another claims); what was read since is dropped (the next owner reads it)."""
        if tps:
            log.info("partitions revoked group=%s partitions=%s", self.kafka.group, names(tps))
            self._abandon(tps)

    def lost(self, tps: list[TopicPartition]) -> None:
        """The session expired: another process may own them already; commit nothing more."""
        if tps:
            log.warning("fenced: partitions lost group=%s partitions=%s, dropping what was read "
                        "without committing", self.kafka.group, names(tps))
            self._abandon(tps)

    def _claim(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        def claim() -> dict[TopicPartition, offsets.Claim]:
            with self.engine.begin() as conn:
                return offsets.claim(conn, self.kafka.group, tps, self.owner)

        start = self.held.claimed(self._retry(claim, "claim partitions"))
        self._mirror.update(start)  # the group learns offsets committed by an earlier owner
        self.log_ends.refresh_soon()
        if self.health is not None:
            self.health.assigned = len(self.held)
        log.info("consumer assigned group=%s partitions=%s", self.kafka.group,
                 ",".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(start.items())))
        return start

    def _abandon(self, tps: Sequence[TopicPartition]) -> None:
        """Drop ``tps``, and every record read but not committed: the partitions kept read
        again from their committed offsets."""
        self._buf = self._new_buffer()
        for topic, p in self.held.drop(tps):
            self.log_ends.forget((topic, p))
            try:
                self.metrics.lag.remove(topic, str(p))
            except KeyError:
                pass
        self._paused = [tp for tp in self._paused if tp in self.held]
        if self.health is not None:
            self.health.assigned = len(self.held)
        self._rewind()

    def _mirror_commits(self) -> None:
        """Commit to the Kafka group the offsets PostgreSQL holds for the partitions held
        (best effort, for kafka-consumer-groups, Burrow, KEDA; never read back)."""
        pending = {tp: o for tp, o in self._mirror.items() if tp in self.held}
        self._mirror = {}
        if pending and self.kafka.use_group and self.kafka.commit_to_kafka:
            self.source.commit(pending)

    def _pause(self) -> None:
        """Take no records until the checkpoint in flight is harvested (the loop resumes).

        First by not polling (:meth:`_poll`), for at most a third of
        ``kafka.max_poll_interval_s``: the client goes on prefetching into its bounded queue,
        and the records are there the moment the checkpoint commits. Pausing the partitions
        empties that queue, and on the embedded broker records flowed again only ~0.7 s after
        a resume, time the polling thread had nothing to decode. A checkpoint that outlasts the
        hold (PostgreSQL down, retrying) pauses the partitions and polls on, so the group still
        sees the process alive and rebalances are served."""
        if not self._paused and self._hold_until is None and self.held:
            self._hold_until = time.monotonic() + self.kafka.max_poll_interval_s / 3

    def _release(self) -> None:
        """The checkpoint was harvested: take records again."""
        if self._paused:
            self.source.resume(self._paused)
        self._paused, self._hold_until = [], None

    def _poll(self, max_records: int, timeout_s: float, inflight: Any) -> list[Any]:
        """The loop's poll: while holding (:meth:`_pause`), wait up to ``timeout_s`` for the
        checkpoint in flight instead, and take nothing."""
        if self._hold_until is not None:
            if inflight is not None and time.monotonic() < self._hold_until:
                wait([inflight], timeout=timeout_s)
                return []
            self._hold_until = None
            if inflight is not None:  # held for too long: pause and poll on
                self._paused = self.held.tps
                self.source.pause(self._paused)
        return self.source.poll(max_records, timeout_s)

    def _rewind(self) -> None:
        self._buf = self._new_buffer()
        back = self.held.rewind()
        if back:
            self.source.seek(back)
            log.info("reading again from committed offsets partitions=%s", names(back))

    def _on_fenced(self, exc: Fenced, cp: CheckpointInput) -> None:
        if not self.kafka.use_group:
            raise exc
        fenced = self.held.same_claim({tp: cp.epochs[tp] for tp in exc.partitions})
        if fenced:  # else this process re-claimed them since (a rebalance gave them back)
            log.warning("fenced group=%s partitions=%s: another process claimed them; the "
                        "checkpoint rolled back, they are dropped", self.kafka.group,
                        names(fenced))
            self.source.pause(fenced)
        self._abandon(fenced)
