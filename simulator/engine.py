"""The simulation loop: chunks of events in, an ordered stream of Kafka messages out.

Event ``k`` of chunk ``c`` depends only on ``(seed, c)`` (each chunk has its own numpy generator)
and on the frame pool, which is filled in stream order, so a seed gives a byte-identical stream
whatever the pacing, the sink or the machine load. Messages come out in publish order: labels
are held in a heap until their arrival time and interleaved with the predictions, so a label
can precede its prediction, follow it by days, or arrive twice.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from monitor.core.ingest.events import encode_label, encode_prediction, prediction_key
from simulator import malformed
from simulator.manifest import Tally
from simulator.messages import LABELS, PREDICTIONS, Message, RunConfig
from simulator.pool import FramePool
from simulator.records import Outcome, prediction_events
from simulator.samples import SampleStore
from simulator.traffic import (
    BASELINE,
    CANARY,
    ERROR_CODES,
    TIMEOUT_MS,
    VERSIONS,
    Chunk,
    sample_chunk,
    sample_infra,
    sample_labels,
)
from simulator.train import load_model
from simulator.vit import ViT, corrupt_position_embeddings

CHUNK = 512  # events per chunk: one generator and one inference batch group each
EARLY_LABEL_S = 30.0  # labels can precede their prediction by up to this much (traffic.py)
# The canary's bad export: 70% of the way to fully permuted position embeddings costs about 20
# points of accuracy while the model stays confident (see docs/simulator.md).
CANARY_CORRUPTION, CANARY_SEED = 0.7, 11


def default_models() -> tuple[dict[str, ViT], dict]:
    """The packaged baseline ViT and its corrupted canary, plus the weights' metadata."""
    baseline, meta = load_model()
    canary = corrupt_position_embeddings(baseline, CANARY_SEED, CANARY_CORRUPTION)
    return {BASELINE: baseline, CANARY: canary}, meta


def artifact_id(model: ViT) -> str:
    """Content hash of a model's weights, as servers report it for lineage."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().numpy().tobytes())
    return "sha256:" + digest.hexdigest()[:16]


class Simulation:
    """Iterate :meth:`messages` once; :attr:`tally` then holds the manifest counts."""

    def __init__(self, cfg: RunConfig, models: dict[str, ViT]) -> None:
        self.cfg = cfg
        self.models = models
        self.artifacts = {v: artifact_id(m) for v, m in models.items()}
        self.store = SampleStore(Path(cfg.sample_store)) if cfg.sample_store else None
        self.pool = FramePool(models, cfg.pool_capacity, self.store)
        self.tally = Tally(cfg)
        self.prefix = f"{cfg.scenario.name}-s{cfg.seed}"
        self._seq = itertools.count()
        self._bad_serial = itertools.count()

    def messages(self) -> Iterator[Message]:
        cfg = self.cfg
        heap: list[tuple[float, int, Message | tuple]] = []
        t, index = 0.0, 0
        for chunk_no in itertools.count():
            rng = np.random.default_rng([cfg.seed, chunk_no])
            arrival = t + np.cumsum(rng.exponential(1.0 / cfg.rate, CHUNK))
            arrival = arrival[arrival < cfg.duration_s]
            if len(arrival):
                for item in self._chunk(rng, index, arrival):
                    heapq.heappush(heap, item)
                t, index = float(arrival[-1]), index + len(arrival)
            # Anything later in the stream is published after t - EARLY_LABEL_S, so everything
            # before that point is final and can go out in order.
            done = len(arrival) < CHUNK
            watermark = np.inf if done else t - EARLY_LABEL_S - 1.0
            while heap and heap[0][0] <= watermark:
                item = heapq.heappop(heap)[2]
                message = item if isinstance(item, Message) else self._label(*item)
                if message.publish_s > cfg.duration_s:
                    self.tally.after_end(message)
                    continue
                self.tally.published(message)
                yield message
            if done:
                return

    def _chunk(self, rng: np.random.Generator, first: int,
               arrival: np.ndarray) -> list[tuple[float, int, Message | tuple]]:
        cfg = self.cfg
        chunk = sample_chunk(rng, first, arrival)
        for incident in cfg.scenario.incidents:
            incident.apply(chunk, cfg.duration_s, rng)
        infra = sample_infra(rng, chunk)
        timeout = infra.latency_ms > TIMEOUT_MS
        failed = rng.random(len(chunk)) < chunk.error_p
        codes = np.array(ERROR_CODES, dtype=object)[rng.integers(0, len(ERROR_CODES), len(chunk))]
        error_code = np.where(timeout, "TIMEOUT", np.where(failed, codes, None))
        ok = ~(timeout | failed)
        event_s = np.maximum(arrival + chunk.ts_offset_s, 0.0)
        outcome = Outcome(ts_ms=cfg.start_ms + np.round(event_s * 1000).astype(np.int64), ok=ok,
                          error_code=error_code, infra=infra)
        ok_rows = np.flatnonzero(ok)
        variants = np.array(VERSIONS, dtype=object)[chunk.version[ok_rows]]
        frames = self.pool.serve(chunk.look[ok_rows], variants, rng)
        ids = [f"{self.prefix}-{i:09d}" for i in chunk.index.tolist()]
        events = prediction_events(chunk, outcome, frames, ok_rows, ids, self.artifacts,
                                   cfg.embedding_format, self.store)
        self.tally.generated(chunk, outcome, frames, ok_rows)
        items: list[tuple[float, int, Message | tuple]] = []
        for event, at in zip(events, arrival.tolist(), strict=True):
            message = Message(at, PREDICTIONS, prediction_key(event), encode_prediction(event))
            items.append((at, next(self._seq), message))
        plan = sample_labels(rng, chunk, event_s)
        self.tally.labels_never += int(np.isnan(plan.first_s[ok_rows]).sum())
        # A wrong first label is another class; the repeated label that follows corrects it.
        wrong = (frames.label + rng.integers(1, 10, len(ok_rows))) % 10
        first_label = np.where(plan.first_wrong[ok_rows], wrong, frames.label)
        for row, label, first in zip(ok_rows.tolist(), frames.label.tolist(),
                                     first_label.tolist(), strict=True):
            first_s, second_s = plan.first_s[row], plan.second_s[row]
            if first_s == first_s:  # NaN: this event is never labelled
                items.append((first_s, next(self._seq), (first_s, ids[row], first, "annotator")))
            if second_s == second_s:
                items.append((second_s, next(self._seq), (second_s, ids[row], label, "review")))
        items.extend(self._bad(rng, chunk, events, arrival))
        return items

    def _label(self, at: float, event_id: str, label: int, source: str) -> Message:
        ts = self.cfg.start_ms + int(round(at * 1000))
        return Message(at, LABELS, event_id.encode(), encode_label(event_id, label, ts, source),
                       kind="label" if source == "annotator" else "label-repeat")

    def _bad(self, rng: np.random.Generator, chunk: Chunk, events: list[dict],
             arrival: np.ndarray) -> list[tuple[float, int, Message | tuple]]:
        """Malformed messages next to tagged events, and re-sent copies of other events."""
        items: list[tuple[float, int, Message | tuple]] = []
        bad = chunk.tags.get("bad-input", np.zeros(len(chunk), dtype=bool))
        for row in np.flatnonzero(bad).tolist():
            serial = next(self._bad_serial)
            kind = malformed.kind_for(serial)
            event_id = f"{self.prefix}-bad-{serial:06d}"
            value = malformed.build(kind, {**events[row], "event_id": event_id})
            at = float(arrival[row])
            ref = (event_id, events[row]["ts"])
            items.append((at, next(self._seq),
                          Message(at, PREDICTIONS, None, value, f"malformed:{kind}", ref)))
        resend = chunk.tags.get("duplicate", np.zeros(len(chunk), dtype=bool))
        for row in np.flatnonzero(resend).tolist():
            # A producer retry after a lost acknowledgement: the same bytes, a little later.
            at = float(arrival[row]) + float(rng.uniform(0.5, 30.0))
            value = encode_prediction(events[row])
            ref = (events[row]["event_id"], events[row]["ts"])
            items.append((at, next(self._seq), Message(at, PREDICTIONS, prediction_key(events[row]),
                                                       value, "duplicate", ref)))
        return items
