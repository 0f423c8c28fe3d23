"""Ground truth of a run: what was published, and which incidents the monitor should find.

:class:`Tally` counts while the engine generates and publishes; :func:`build_manifest` turns it
into the JSON document written next to the stream (format: ``docs/simulator.md``). Counts are
taken when a message is handed to the sink, so the manifest always matches the published stream.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.incidents import ALL_VERSIONS
from simulator.messages import Message, RunConfig
from simulator.records import rfc3339
from simulator.traffic import (
    BASELINE,
    CAMERAS,
    CANARY,
    GROUPS,
    MODEL,
    TIERS,
    VERSIONS,
    Chunk,
)

if TYPE_CHECKING:  # only needed for annotations
    from simulator.pool import Frames
    from simulator.records import Outcome

MANIFEST_VERSION = 1
# The SLOs the incidents are sized against (the monitor's configured SLOs should match).
SLO_ASSUMPTIONS = {"latency_threshold_ms": 250.0, "latency_objective": 0.99,
                   "error_rate_objective": 0.995}


class Tally:
    """Counters the engine updates; plain Python numbers so the manifest is exact."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.messages: Counter[str] = Counter()
        self.by_version: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.correct: Counter[str] = Counter()  # key: incident kind, "unaffected", "all", ...
        self.labelled_events: Counter[str] = Counter()
        self.affected: Counter[str] = Counter()
        self.malformed_entries: list[dict[str, Any]] = []
        self.duplicate_ids: list[str] = []
        self.labels_after_end = 0  # label messages (first or repeated) due after the run
        self.labels_never = 0  # successful predictions that are never labelled
        self.ts_min: int | None = None
        self.ts_max: int | None = None

    def generated(self, chunk: Chunk, outcome: Outcome, frames: Frames,
                  ok_rows: np.ndarray) -> None:
        """Ground-truth counts of one chunk's predictions (all of which are published)."""
        self.by_version.update(VERSIONS[v] for v in chunk.version.tolist())
        self.errors.update(c for c in outcome.error_code.tolist() if c is not None)
        lo, hi = int(outcome.ts_ms.min()), int(outcome.ts_ms.max())
        self.ts_min = lo if self.ts_min is None else min(self.ts_min, lo)
        self.ts_max = hi if self.ts_max is None else max(self.ts_max, hi)
        right = frames.probs.argmax(axis=1) == frames.label
        any_tag = np.zeros(len(chunk), dtype=bool)
        for kind, mask in chunk.tags.items():
            self.affected[kind] += int(mask.sum())
            any_tag |= mask
            self._accuracy(kind, right[mask[ok_rows]])
        self._accuracy("unaffected", right[~any_tag[ok_rows]])
        self._accuracy("all", right)
        for version in set(chunk.version.tolist()):
            self._accuracy(f"version:{VERSIONS[version]}", right[chunk.version[ok_rows] == version])

    def _accuracy(self, key: str, right: np.ndarray) -> None:
        self.correct[key] += int(right.sum())
        self.labelled_events[key] += len(right)

    def accuracy(self, key: str) -> float | None:
        n = self.labelled_events[key]
        return round(self.correct[key] / n, 4) if n else None

    def published(self, message: Message) -> None:
        self.messages[message.kind] += 1
        if message.kind.startswith("malformed:"):
            event_id, ts = message.ref
            self.malformed_entries.append({
                "id": event_id, "kind": message.kind.split(":", 1)[1], "ts": ts,
                "bytes": len(message.value), "sha256": hashlib.sha256(message.value).hexdigest()})
        elif message.kind == "duplicate":
            self.duplicate_ids.append(message.ref[0])

    def after_end(self, message: Message) -> None:
        """A message due after the run ends is not published (labels still on their way)."""
        if message.kind.startswith("label"):
            self.labels_after_end += 1


def build_manifest(cfg: RunConfig, tally: Tally, artifacts: dict[str, str],
                   weights: dict[str, Any], sink: dict[str, Any]) -> dict[str, Any]:
    """The manifest document (see ``docs/simulator.md`` for every field)."""
    end_ms = cfg.start_ms + int(round(cfg.duration_s * 1000))
    incidents = []
    for inc in cfg.scenario.incidents:
        entry = inc.describe()
        version = entry.pop("model_version")
        start = cfg.start_ms + int(round(inc.start * cfg.duration_s * 1000))
        stop = cfg.start_ms + int(round(inc.end * cfg.duration_s * 1000))
        incidents.append({
            "kind": entry.pop("kind"), "start_ms": start, "end_ms": stop,
            "start": rfc3339(start), "end": rfc3339(stop), "model": MODEL,
            "model_versions": list(VERSIONS) if version == ALL_VERSIONS else [version], **entry,
            "events_affected": tally.affected[inc.kind],
            "accuracy_affected": tally.accuracy(inc.kind),
            "accuracy_unaffected": tally.accuracy("unaffected")})
    kinds = Counter(e["kind"] for e in tally.malformed_entries)
    n_pred = tally.messages["prediction"]
    n_labels = tally.messages["label"] + tally.messages["label-repeat"]
    return {
        "manifest_version": MANIFEST_VERSION,
        "scenario": cfg.scenario.name, "summary": cfg.scenario.summary, "seed": cfg.seed,
        "rate": cfg.rate, "duration_s": cfg.duration_s,
        "start_ms": cfg.start_ms, "end_ms": end_ms, "start": rfc3339(cfg.start_ms),
        "end": rfc3339(end_ms),
        "event_time": {"min_ts_ms": tally.ts_min, "max_ts_ms": tally.ts_max},
        "model": MODEL,
        "versions": {BASELINE: {"role": "baseline", "artifact_id": artifacts[BASELINE]},
                     CANARY: {"role": "canary", "artifact_id": artifacts[CANARY]}},
        "weights": weights, "sink": sink,
        "embedding": {"dim": weights["embedding_dim"], "format": cfg.embedding_format,
                      "dtype": "f16" if cfg.embedding_format == "b64" else None},
        "attributes": {"camera_id": [c.camera_id for c in CAMERAS],
                       "region": sorted({c.region for c in CAMERAS}),
                       "device": sorted({c.device for c in CAMERAS}),
                       "customer_tier": list(TIERS), "group": list(GROUPS)},
        "slo_assumptions": SLO_ASSUMPTIONS,
        "incidents": incidents,
        "counts": {
            "predictions": {"published": n_pred, "ok": n_pred - sum(tally.errors.values()),
                            "error": sum(tally.errors.values()),
                            "by_version": dict(sorted(tally.by_version.items())),
                            "by_error_code": dict(sorted(tally.errors.items()))},
            "labels": {"published": n_labels, "events_labelled": tally.messages["label"],
                       "repeated": tally.messages["label-repeat"],
                       "never": tally.labels_never, "due_after_end": tally.labels_after_end},
            "malformed": {"total": len(tally.malformed_entries),
                          "by_kind": dict(sorted(kinds.items()))},
            "duplicates_resent": len(tally.duplicate_ids),
            "messages": {"predictions_topic": n_pred + len(tally.malformed_entries)
                         + len(tally.duplicate_ids), "labels_topic": n_labels},
        },
        "accuracy": {"all": tally.accuracy("all"), "unaffected": tally.accuracy("unaffected"),
                     **{v: tally.accuracy(f"version:{v}") for v in VERSIONS}},
        "malformed": tally.malformed_entries,
        "duplicates": tally.duplicate_ids,
    }
