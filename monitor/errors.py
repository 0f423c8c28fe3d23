"""One error hierarchy. Every error carries the data a handler needs, not just a message."""

from __future__ import annotations


class VitmonError(Exception):
    """Root of vitmon's errors."""


class ConfigError(VitmonError):
    """A bad setting. ``str()`` is the one line printed at start: ``<setting>: <what is wrong>``."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message


class BadEvent(VitmonError):
    """A record that cannot be accepted; it goes to the dead-letter topic and table."""

    def __init__(self, reason: str, topic: str, partition: int, offset: int, detail: str = "") -> None:
        super().__init__(f"{reason} at {topic}[{partition}]@{offset}: {detail}")
        self.reason, self.topic, self.partition, self.offset = reason, topic, partition, offset
        self.detail = detail


class OffsetRegression(VitmonError):
    """A checkpoint would move a stored offset backwards, or another process moved it:
    committing would count events twice, so the checkpoint is refused."""

    def __init__(self, topic: str, partition: int, stored: int, expected: int) -> None:
        super().__init__(
            f"offset of {topic}[{partition}] is {stored} in the database, expected {expected}: "
            "another consumer owns this partition, or offsets went backwards")
        self.topic, self.partition, self.stored, self.expected = topic, partition, stored, expected


class Fenced(VitmonError):
    """Another process claimed these partitions since this one did (a rebalance moved them, or
    this process was paused past its session timeout): its checkpoint must not commit. Under
    a consumer group a normal event: the checkpoint rolls back and the partitions are dropped."""

    def __init__(self, group: str, partitions: list[tuple[str, int]]) -> None:
        names = ",".join(f"{t}[{p}]" for t, p in partitions)
        super().__init__(f"fenced: another process of group {group} claimed {names}")
        self.group, self.partitions = group, partitions
        self.checkpoint: object = None  # the refused checkpoint's input, set by the consumer


class CheckpointAbandoned(VitmonError):
    """The process is stopping and gave up the checkpoint in flight: its transaction rolls back
    and the next run reads the same records again (exactly-once holds)."""

    def __init__(self, step: str) -> None:
        super().__init__(f"checkpoint abandoned at {step}: stopping")
        self.step = step
