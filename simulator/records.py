"""Turn the columns of one chunk into v1 prediction events (dicts) ready for ``encode_prediction``.

Columns are converted to Python lists once per chunk (``tolist``) so the per-event loop touches
only Python objects; this loop and JSON encoding are most of the simulator's cost after the pool
is warm.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np

from monitor.core.ingest.events import embedding_to_b64
from simulator.pool import STAT_NAMES, Frames
from simulator.samples import SampleStore
from simulator.traffic import CAMERAS, GROUPS, MODEL, TIERS, VERSIONS, Chunk, Infra

EmbeddingFormat = Literal["b64", "list"]
SAMPLE_BUCKET = "s3://vitmon-samples"


def rfc3339(ms: int) -> str:
    """Epoch milliseconds as an RFC 3339 UTC string.

    >>> rfc3339(1793491200123)
    '2026-11-01T00:00:00.123Z'
    """
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Outcome:
    """What the server did for each event of a chunk."""

    ts_ms: np.ndarray  # int64 event time
    ok: np.ndarray  # bool
    error_code: np.ndarray  # object[str | None]
    infra: Infra


def prediction_events(chunk: Chunk, outcome: Outcome, frames: Frames, ok_rows: np.ndarray,
                      event_ids: list[str], artifacts: dict[str, str],
                      embedding_format: EmbeddingFormat,
                      store: SampleStore | None = None) -> list[dict[str, Any]]:
    """One event dict per row of ``chunk``; ``frames`` has one row per ``ok_rows`` entry.
    ``sample_uri`` points into ``store`` (``file://``) when given, else into a notional bucket."""
    infra = outcome.infra
    frame_of = np.full(len(chunk), -1)
    frame_of[ok_rows] = np.arange(len(ok_rows))
    pred = frames.probs.argmax(axis=1).tolist()
    conf = np.round(frames.probs.max(axis=1).astype(np.float64), 6).tolist()
    probs = np.round(frames.probs.astype(np.float64), 6).tolist()
    stats = np.round(frames.stats, 5).tolist()
    sizes = frames.size.tolist()
    emb = frames.embedding
    cols = zip(event_ids, outcome.ts_ms.tolist(), chunk.camera.tolist(), chunk.tier.tolist(),
               chunk.group.tolist(), chunk.version.tolist(), outcome.error_code.tolist(),
               infra.latency_ms.tolist(), infra.batch_size.tolist(), infra.cold_start.tolist(),
               infra.gpu_util.tolist(), infra.gpu_mem_mb.tolist(), frame_of.tolist(), strict=True)
    events = []
    for eid, ts, cam, tier, group, ver, code, lat, batch, cold, util, mem, f in cols:
        camera = CAMERAS[cam]
        version = VERSIONS[ver]
        # CPU-served cameras run an older server build that writes RFC 3339 timestamps; the
        # contract allows both forms, so the stream exercises both.
        event: dict[str, Any] = {
            "event_id": eid, "ts": rfc3339(ts) if camera.device == "cpu" else ts, "model": MODEL,
            "model_version": version, "artifact_id": artifacts[version], "latency_ms": lat,
            "status": "ok" if f >= 0 else "error"}
        if f >= 0:
            event["pred"], event["probs"], event["confidence"] = pred[f], probs[f], conf[f]
            if embedding_format == "b64":
                event["embedding_b64"], event["embedding_dtype"] = embedding_to_b64(emb[f], "f16")
            else:
                event["embedding"] = np.round(emb[f].astype(np.float64), 5).tolist()
            event["image"] = {"width": sizes[f], "height": sizes[f],
                              **dict(zip(STAT_NAMES, stats[f], strict=True))}
            sha = frames.sha256[f]
            event["input_sha256"] = sha
            event["sample_uri"] = (store.uri(sha) if store is not None else
                                   f"{SAMPLE_BUCKET}/{camera.camera_id}/{sha[:2]}/{sha}.png")
        else:
            event["error_code"] = code
        event["attrs"] = {"camera_id": camera.camera_id, "region": camera.region,
                          "device": camera.device, "customer_tier": TIERS[tier],
                          "group": GROUPS[group]}
        event["batch_size"], event["cold_start"] = batch, cold
        if util == util:  # not NaN: GPU servers report utilisation and memory
            event["gpu_util"], event["gpu_mem_mb"] = util, mem
        events.append(event)
    return events
