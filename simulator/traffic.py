"""The production traffic model: who sends images, how long inference takes, when labels come.

Everything here is vectorised over a :class:`Chunk` of events and driven by a seeded numpy
generator. Incidents (``simulator.incidents``) edit a chunk after :func:`sample_chunk` and before
the engine renders images and draws latencies, so each incident changes a cause (a camera's look,
the serving version, server load) and the effects follow from the model.

>>> import numpy as np
>>> chunk = sample_chunk(np.random.default_rng(0), first_index=0, arrival_s=np.arange(4.0))
>>> [CAMERAS[c].camera_id for c in chunk.camera]
['cam-04', 'cam-02', 'cam-01', 'cam-01']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.looks import LOOKS

MODEL = "vit-tiny-digits"
BASELINE = "2026.11.1"
CANARY = "2026.11.2"
VERSIONS = (BASELINE, CANARY)


@dataclass(frozen=True)
class Camera:
    camera_id: str
    region: str
    device: str  # serving hardware behind this camera's endpoint
    look: str  # key of simulator.looks.LOOKS
    share: float  # fraction of traffic


CAMERAS: tuple[Camera, ...] = (
    Camera("cam-01", "eu-west", "edge-gpu", "studio", 0.20),
    Camera("cam-02", "eu-west", "cloud-gpu", "warm", 0.17),
    Camera("cam-03", "us-east", "edge-gpu", "cool", 0.15),
    Camera("cam-04", "us-east", "cloud-gpu", "studio", 0.13),
    Camera("cam-05", "us-east", "cpu", "dim", 0.11),
    Camera("cam-06", "ap-south", "cloud-gpu", "bright", 0.10),
    Camera("cam-07", "ap-south", "cpu", "warm", 0.08),
    Camera("cam-08", "ap-south", "edge-gpu", "cool", 0.06),
)
TIERS = ("free", "pro", "enterprise")
TIER_SHARE = (0.6, 0.3, 0.1)
GROUPS = ("A", "B")  # the protected attribute used by the fairness audit
GROUP_SHARE = (0.7, 0.3)
ERROR_CODES = ("UPSTREAM_UNAVAILABLE", "DECODE_ERROR", "OOM")
TIMEOUT_MS = 5000.0  # the server gives up and reports TIMEOUT beyond this

# Latency body per device: lognormal median (ms) and batch-size cost per extra item. A GPU batches
# almost for free; a CPU pays nearly linearly.
DEVICE_MEDIAN_MS = {"edge-gpu": 22.0, "cloud-gpu": 14.0, "cpu": 55.0}
DEVICE_BATCH_COST = {"edge-gpu": 0.03, "cloud-gpu": 0.02, "cpu": 0.15}
DEVICE_BATCHES = {"edge-gpu": (1, 2, 4, 8), "cloud-gpu": (1, 4, 8, 16, 32), "cpu": (1, 2, 4)}
LATENCY_SIGMA = 0.3
TAIL_P, TAIL_ALPHA = 0.004, 1.6  # rare Pareto-distributed stalls (GC, noisy neighbour)
COLD_START_P = 0.0005
BASE_ERROR_P = 0.001


@dataclass
class Chunk:
    """Columnar per-event state of one block of consecutive events.

    Incidents mutate ``look`` (name per event), ``version``, ``latency_mult``, ``error_p`` and the
    label policy columns; the engine fills in the rest.
    """

    index: np.ndarray  # int64 global event number
    arrival_s: np.ndarray  # float64 seconds since start: publish order
    ts_offset_s: np.ndarray  # float64 event time minus arrival (<= 0 for buffered cameras)
    camera: np.ndarray  # int index into CAMERAS
    tier: np.ndarray
    group: np.ndarray
    look: np.ndarray  # object: the simulator.looks.Look each frame is rendered with
    version: np.ndarray  # int index into VERSIONS
    latency_mult: np.ndarray
    error_p: np.ndarray
    label_p_never: np.ndarray
    label_backlog_until_s: np.ndarray  # labels held back until this time (NaN: no backlog)
    tags: dict[str, np.ndarray] = field(default_factory=dict)  # incident name -> affected mask

    def __len__(self) -> int:
        return len(self.index)


def sample_chunk(rng: np.random.Generator, first_index: int, arrival_s: np.ndarray) -> Chunk:
    """Healthy traffic for events arriving at ``arrival_s`` (seconds since the run's start)."""
    n = len(arrival_s)
    shares = np.array([c.share for c in CAMERAS])
    camera = rng.choice(len(CAMERAS), size=n, p=shares / shares.sum())
    # 2% of frames come from a camera that buffered them: their event time is older than their
    # arrival, so the stream is out of order by up to two minutes.
    late = rng.random(n) < 0.02
    ts_offset = np.where(late, -rng.uniform(5.0, 120.0, n), 0.0)
    return Chunk(
        index=np.arange(first_index, first_index + n, dtype=np.int64),
        arrival_s=arrival_s, ts_offset_s=ts_offset, camera=camera,
        tier=rng.choice(len(TIERS), size=n, p=TIER_SHARE),
        group=rng.choice(len(GROUPS), size=n, p=GROUP_SHARE),
        look=np.array([LOOKS[CAMERAS[c].look] for c in camera], dtype=object),
        version=np.zeros(n, dtype=np.int64), latency_mult=np.ones(n),
        error_p=np.full(n, BASE_ERROR_P), label_p_never=np.full(n, 0.08),
        label_backlog_until_s=np.full(n, np.nan))


@dataclass(frozen=True)
class Infra:
    """Infrastructure columns drawn for a chunk."""

    latency_ms: np.ndarray
    batch_size: np.ndarray
    cold_start: np.ndarray
    gpu_util: np.ndarray  # NaN on CPU servers (the field is then omitted)
    gpu_mem_mb: np.ndarray


def sample_infra(rng: np.random.Generator, chunk: Chunk) -> Infra:
    """Latency: lognormal body x batch-size cost x incident multiplier, Pareto tail, cold starts.

    >>> rng = np.random.default_rng(1)
    >>> lat = sample_infra(rng, sample_chunk(rng, 0, np.zeros(20000))).latency_ms
    >>> 10 < float(np.median(lat)) < 40, float(np.mean(lat > 250)) < 0.01
    (True, True)
    """
    n = len(chunk)
    devices = [CAMERAS[c].device for c in chunk.camera]
    median = np.array([DEVICE_MEDIAN_MS[d] for d in devices])
    cost = np.array([DEVICE_BATCH_COST[d] for d in devices])
    pick = rng.random(n)
    batch = np.array([DEVICE_BATCHES[d][int(p * len(DEVICE_BATCHES[d]))]
                      for d, p in zip(devices, pick, strict=True)])
    latency = median * np.exp(LATENCY_SIGMA * rng.standard_normal(n)) * (1 + cost * (batch - 1))
    stall = rng.random(n) < TAIL_P
    latency = np.where(stall, latency * 3 * (1 + rng.pareto(TAIL_ALPHA, n)), latency)
    cold = rng.random(n) < COLD_START_P
    latency = np.where(cold, latency + rng.lognormal(np.log(1500.0), 0.4, n), latency)
    latency = latency * chunk.latency_mult
    is_gpu = np.array([d != "cpu" for d in devices])
    util = np.clip(0.25 + 0.02 * batch + 0.05 * rng.standard_normal(n), 0.0, 1.0)
    return Infra(latency_ms=np.round(latency, 3), batch_size=batch, cold_start=cold,
                 gpu_util=np.where(is_gpu, np.round(util, 3), np.nan),
                 gpu_mem_mb=np.where(is_gpu, 1800.0 + 45.0 * batch, np.nan))


@dataclass(frozen=True)
class LabelPlan:
    """When each event's label(s) arrive, in seconds since the start (NaN: never)."""

    first_s: np.ndarray
    first_wrong: np.ndarray  # bool: the first copy carries a wrong class (corrected later)
    second_s: np.ndarray  # NaN unless the label is published twice


def sample_labels(rng: np.random.Generator, chunk: Chunk, event_s: np.ndarray) -> LabelPlan:
    """Label delays: minutes (most), hours, days; 1% before the prediction; some never; 4% twice.

    A duplicate's first copy is wrong half of the time and the second copy (later) is right, so
    a consumer must keep the last label it sees.
    """
    n = len(chunk)
    kind = rng.random(n)
    minutes = rng.lognormal(np.log(8 * 60.0), 0.8, n)
    hours = rng.lognormal(np.log(3 * 3600.0), 0.7, n)
    days = rng.lognormal(np.log(1.5 * 86400.0), 0.4, n)
    early = -rng.uniform(1.0, 30.0, n)
    delay = np.select([kind < 0.01, kind < 0.56, kind < 0.90], [early, minutes, hours], days)
    first = event_s + delay
    backlog = ~np.isnan(chunk.label_backlog_until_s)
    first = np.where(backlog, np.fmax(first, chunk.label_backlog_until_s)
                     + rng.lognormal(np.log(3600.0), 1.0, n), first)
    first = np.where(rng.random(n) < chunk.label_p_never, np.nan, first)
    twice = (rng.random(n) < 0.04) & ~np.isnan(first)
    second = np.where(twice, first + rng.uniform(60.0, 6 * 3600.0, n), np.nan)
    wrong = twice & (rng.random(n) < 0.5)
    return LabelPlan(first_s=first, first_wrong=wrong, second_s=second)
