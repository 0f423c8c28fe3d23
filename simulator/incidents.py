"""Scripted production incidents: each edits the causes in a :class:`~simulator.traffic.Chunk`.

An incident is active for arrivals in ``[start, end)`` given as fractions of the run, so one
scenario scales from a two-minute test to a three-day SLO run. ``describe`` returns the
ground-truth entry of the manifest (without times and counts, which the engine adds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from simulator.looks import LOOKS
from simulator.traffic import BASELINE, CAMERAS, CANARY, GROUPS, Chunk

ALL_VERSIONS = "*"


@dataclass(frozen=True)
class Incident:
    """Base: the window and the manifest entry; subclasses implement :meth:`apply`."""

    start: float
    end: float
    kind: ClassVar[str] = ""

    def active(self, chunk: Chunk, duration_s: float) -> np.ndarray:
        lo, hi = self.start * duration_s, self.end * duration_s
        return (chunk.arrival_s >= lo) & (chunk.arrival_s < hi)

    def apply(self, chunk: Chunk, duration_s: float, rng: np.random.Generator) -> None:
        """Edit ``chunk`` in place and record the affected rows in ``chunk.tags[self.kind]``."""
        raise NotImplementedError

    def slice(self) -> dict[str, str]:
        return {}

    def version(self) -> str:
        return BASELINE

    def expected_signals(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        params = {k: v for k, v in vars(self).items() if k not in ("start", "end")}
        return {"kind": self.kind, "model_version": self.version(), "slice": self.slice() or
                {"all": "all"}, "parameters": params, "expected_signals": self.expected_signals()}


def _signal(detector: str, severity: str, **details: Any) -> dict[str, Any]:
    return {"detector": detector, "severity": severity, **details}


def _camera_index(camera_id: str) -> int:
    return [c.camera_id for c in CAMERAS].index(camera_id)


@dataclass(frozen=True)
class CameraFirmware(Incident):
    """One camera's firmware update changes colour profile, exposure, focus and resolution."""

    camera_id: str = "cam-03"
    look: str = "firmware-bug"
    kind: ClassVar[str] = "camera-firmware"

    def apply(self, chunk: Chunk, duration_s: float, rng: np.random.Generator) -> None:
        hit = self.active(chunk, duration_s) & (chunk.camera == _camera_index(self.camera_id))
        chunk.look[hit] = LOOKS[self.look]
        chunk.tags[self.kind] = hit

    def slice(self) -> dict[str, str]:
        return {"camera_id": self.camera_id}

    def expected_signals(self) -> list[dict[str, Any]]:
        return [_signal("feature_drift", "ticket", features=["image.brightness", "image.contrast",
                                                             "image.saturation", "image.sharpness",
                                                             "image.width", "image.height"]),
                _signal("embedding_drift", "ticket"), _signal("prediction_drift", "ticket"),
                _signal("performance", "ticket", metric="accuracy", direction="down"),
                _signal("data_quality", "ticket", check="image_size")]


@dataclass(frozen=True)
class CanaryRegression(Incident):
    """A canary with corrupted position embeddings takes ``share`` of traffic until rollback."""

    share: float = 0.10
    kind: ClassVar[str] = "canary-regression"

    def apply(self, chunk: Chunk, duration_s: float, rng: np.random.Generator) -> None:
        hit = self.active(chunk, duration_s) & (rng.random(len(chunk)) < self.share)
        chunk.version[hit] = 1
        chunk.tags[self.kind] = hit

    def version(self) -> str:
        return CANARY

    def expected_signals(self) -> list[dict[str, Any]]:
        return [_signal("version_health", "page", finding="rollback recommended",
                        baseline=BASELINE, canary=CANARY),
                _signal("performance", "ticket", metric="accuracy", direction="down"),
                _signal("prediction_drift", "ticket"), _signal("embedding_drift", "ticket")]


@dataclass(frozen=True)
class LatencySpike(Incident):
    """A region's serving pool saturates: latency x ``factor``; the slowest requests time out."""

    region: str = "us-east"
    factor: float = 15.0
    kind: ClassVar[str] = "latency-spike"

    def apply(self, chunk: Chunk, duration_s: float, rng: np.random.Generator) -> None:
        in_region = np.array([CAMERAS[c].region == self.region for c in chunk.camera], dtype=bool)
        hit = self.active(chunk, duration_s) & in_region
        chunk.latency_mult[hit] *= self.factor
        chunk.tags[self.kind] = hit

    def slice(self) -> dict[str, str]:
        return {"region": self.region}

    def version(self) -> str:
        return ALL_VERSIONS

    def expected_signals(self) -> list[dict[str, Any]]:
        # latency_ms is no default drift feature (load-driven; the SLO covers it)
        return [_signal("slo_burn", "page", slo="latency", windows=["1h", "5m"])]


@dataclass(frozen=True)
class SlowBurn(Incident):
    """Error rate a little above budget for hours: a ticket, never a page."""

    error_p: float = 0.015
    kind: ClassVar[str] = "slow-burn"

    def apply(self, chunk: Chunk, duration_s: float, rng: np.random.Generator) -> None:
        hit = self.active(chunk, duration_s)
        chunk.error_p[hit] = np.maximum(chunk.error_p[hit], self.error_p)
        chunk.tags[self.kind] = hit

    def version(self) -> str:
        return ALL_VERSIONS

    def expected_signals(self) -> list[dict[str, Any]]:
        return [_signal("slo_burn", "ticket", slo="error_rate", windows=["3d", "6h"],
                        not_severity="page")]


@dataclass(frozen=True)
class FairnessGap(Incident):
    """Inputs from one protected group degrade (poorer devices and lighting)."""

    group: str = "B"
    look: str = "degraded"
    strength: float = 0.95
    kind: ClassVar[str] = "fairness-gap"

    def apply(self, chunk: Chunk, duration_s: float, rng: np.random.Generator) -> None:
        hit = self.active(chunk, duration_s) & (chunk.group == GROUPS.index(self.group))
        target = LOOKS[self.look]
        chunk.look[hit] = [look.blend(target, self.strength) for look in chunk.look[hit]]
        chunk.tags[self.kind] = hit

    def slice(self) -> dict[str, str]:
        return {"group": self.group}

    def expected_signals(self) -> list[dict[str, Any]]:
        return [_signal("fairness", "ticket", metric="accuracy", group=self.group,
                        reference_group=GROUPS[0]),
                _signal("performance", "ticket", metric="accuracy", direction="down")]


@dataclass(frozen=True)
class GradualDrift(Incident):
    """Every camera drifts towards dusk lighting in ``levels`` steps, one look per step."""

    look: str = "dusk"
    levels: int = 8
    kind: ClassVar[str] = "gradual-drift"

    def apply(self, chunk: Chunk, duration_s: float, rng: np.random.Generator) -> None:
        span = max((self.end - self.start) * duration_s, 1e-9)
        progress = np.clip((chunk.arrival_s - self.start * duration_s) / span, 0.0, 1.0)
        level = np.ceil(progress * self.levels) / self.levels  # 0 before start, 1 from end on
        hit = level > 0
        target = LOOKS[self.look]
        pairs = zip(chunk.look[hit], level[hit], strict=True)
        chunk.look[hit] = [look.blend(target, t) for look, t in pairs]
        chunk.tags[self.kind] = hit

    def expected_signals(self) -> list[dict[str, Any]]:
        return [_signal("feature_drift", "ticket", features=["image.brightness", "image.contrast"],
                        onset="gradual"),
                _signal("embedding_drift", "ticket", onset="gradual"),
                _signal("performance", "ticket", metric="accuracy", direction="down")]


@dataclass(frozen=True)
class BadInput(Incident):
    """A misbehaving client: malformed messages and re-sent duplicates among good traffic."""

    malformed_p: float = 0.02
    duplicate_p: float = 0.005
    kind: ClassVar[str] = "bad-input"

    def apply(self, chunk: Chunk, duration_s: float, rng: np.random.Generator) -> None:
        active = self.active(chunk, duration_s)
        chunk.tags[self.kind] = active & (rng.random(len(chunk)) < self.malformed_p)
        chunk.tags["duplicate"] = active & (rng.random(len(chunk)) < self.duplicate_p)

    def version(self) -> str:
        return ALL_VERSIONS

    def expected_signals(self) -> list[dict[str, Any]]:
        return [_signal("data_quality", "ticket", check="rejected_event_rate",
                        dlq_topic="vit.predictions.dlq")]


@dataclass(frozen=True)
class LabelDelay(Incident):
    """The labelling pipeline stalls: labels of events in the window arrive after its end."""

    p_never: float = 0.3
    kind: ClassVar[str] = "label-delay"

    def apply(self, chunk: Chunk, duration_s: float, rng: np.random.Generator) -> None:
        hit = self.active(chunk, duration_s)
        chunk.label_backlog_until_s[hit] = self.end * duration_s
        chunk.label_p_never[hit] = self.p_never
        chunk.tags[self.kind] = hit

    def version(self) -> str:
        return ALL_VERSIONS

    def expected_signals(self) -> list[dict[str, Any]]:
        return [_signal("performance", "none", metric="label_coverage", direction="down",
                        note="accuracy unchanged: report insufficient data, never a regression")]
