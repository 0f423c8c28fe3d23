"""The keys the tables share: a window's key (window states and findings) and a Kafka partition."""

from __future__ import annotations

from dataclasses import dataclass

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class WindowKey:
    """One (detector, model, version, slice, window) -- the key of a window state and of the
    findings evaluated from it. SLO findings use model version ``*`` (every version)."""

    detector: str
    model: str
    model_version: str
    slice: str
    window_start_ms: int

    def as_tuple(self) -> tuple[str, str, str, str, int]:
        return (self.detector, self.model, self.model_version, self.slice, self.window_start_ms)
