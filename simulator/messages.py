"""The types the simulator's modules share: a published message and a run's configuration.

A module of their own, so the engine (which produces messages) and the manifest (which counts
them) both import them and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.records import EmbeddingFormat
from simulator.scenarios import Scenario

PREDICTIONS, LABELS = "predictions", "labels"


@dataclass(frozen=True)
class Message:
    publish_s: float  # seconds of event time since the start at which the message is sent
    topic: str  # PREDICTIONS or LABELS (the sink maps these to real topic names)
    key: bytes | None
    value: bytes
    # prediction, label, label-repeat, duplicate or malformed:<kind> (for the tally)
    kind: str = "prediction"
    ref: tuple = ()  # (event_id, ts) of a duplicate or malformed message


@dataclass(frozen=True)
class RunConfig:
    scenario: Scenario
    rate: float  # events per second of event time
    duration_s: float
    start_ms: int
    seed: int = 0
    embedding_format: EmbeddingFormat = "b64"
    pool_capacity: int = 2048
    #: Directory of the local sample store (PNG per frame, ``file://`` sample URIs); None: the
    #: events point into a notional ``s3://`` bucket and no file is written.
    sample_store: str | None = None
