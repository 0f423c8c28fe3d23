"""The scenario catalogue: named lists of incidents with a recommended run length.

Incident windows are fractions of ``--duration``; the recommended durations make each incident
reach the detector windows it targets (for example, the 1 h / 5 min fast-burn pair for
``latency-spike`` and the 3 d / 6 h slow-burn pair for ``slow-burn``).

>>> sorted(SCENARIOS)[:3]
['bad-input', 'camera-firmware', 'canary-regression']
>>> SCENARIOS["latency-spike"].incidents[0].kind
'latency-spike'
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.incidents import (
    BadInput,
    CameraFirmware,
    CanaryRegression,
    FairnessGap,
    GradualDrift,
    Incident,
    LabelDelay,
    LatencySpike,
    SlowBurn,
)

HOUR = 3600.0


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    incidents: tuple[Incident, ...]
    recommended_duration_s: float
    recommended_rate: float


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("steady", "healthy traffic only: the false-alarm baseline", (), 2 * HOUR, 5.0),
    Scenario("camera-firmware", "cam-03's firmware washes frames out from 40% of the run on",
             (CameraFirmware(0.4, 1.0),), 2 * HOUR, 5.0),
    Scenario("canary-regression", "canary 2026.11.2 with corrupted position embeddings takes "
             "10% of traffic from 30% to 80% of the run", (CanaryRegression(0.3, 0.8),),
             4 * HOUR, 10.0),
    Scenario("latency-spike", "us-east latency x15 from 40% to 60% of the run, then recovery",
             (LatencySpike(0.4, 0.6),), 6 * HOUR, 5.0),
    Scenario("slow-burn", "error rate 1.5% (3x a 99.5% SLO budget) from 15% to 85% of the run",
             (SlowBurn(0.15, 0.85),), 72 * HOUR, 1.0),
    Scenario("fairness-gap", "group B inputs degrade from 30% of the run on",
             (FairnessGap(0.3, 1.0),), 2 * HOUR, 5.0),
    Scenario("gradual-drift", "all cameras drift towards dusk lighting in 8 steps from 20% to "
             "100% of the run", (GradualDrift(0.2, 1.0),), 12 * HOUR, 2.0),
    Scenario("bad-input", "2% malformed messages (12 kinds) and 0.5% re-sent duplicates from 20% "
             "to 80% of the run", (BadInput(0.2, 0.8),), 1 * HOUR, 5.0),
    Scenario("label-delay", "labels of events from 30% to 60% of the run arrive only after 60% "
             "(30% never)", (LabelDelay(0.3, 0.6),), 24 * HOUR, 1.0),
    Scenario("mixed", "the demo: camera firmware, a latency spike, a bad canary and a trickle "
             "of bad input", (CameraFirmware(0.15, 0.5), LatencySpike(0.55, 0.65),
                              CanaryRegression(0.7, 0.95),
                              BadInput(0.0, 1.0, malformed_p=0.003, duplicate_p=0.002)),
             6 * HOUR, 5.0),
)}
