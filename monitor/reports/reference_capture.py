"""``vitmon reference capture``: build a reference profile for one model version from a JSONL
file (raw events, or ``vitmon simulate --out`` messages: :mod:`monitor.core.ingest.jsonl`) or
from the predictions topic over an event-time range; the command stores it (active).

Labels found alongside (the labels topic, or label lines in the file) calibrate the label-free
accuracy estimate of the ``performance`` detector.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from monitor.app.config import Settings
from monitor.contract import Batch
from monitor.core import kafka
from monitor.core.ingest import decode, jsonl
from monitor.core.ingest.records import Record
from monitor.core.windows import SLICE_SEPARATOR, WindowAssigner
from slices import SliceCatalog, dimensions

log = logging.getLogger(__name__)

#: A slice gets its own reference sub-profile from this many reference events on; smaller
#: slices get no drift verdict ("no reference for this slice").
MIN_SLICE_EVENTS = 200


@dataclass(frozen=True)
class Captured:
    profile: dict[str, Any]
    n_events: int
    n_labelled: int
    source: str


def file_records(path: Path, settings: Settings) -> Iterator[Record]:
    """The records of a JSONL file (raw events or simulator messages) as if consumed from the
    configured topics; a bad line raises :class:`~monitor.core.ingest.jsonl.JsonlError`."""
    return jsonl.read_records(path, settings.kafka.predictions_topic, settings.kafka.labels_topic)


def topic_records(settings: Settings) -> Iterator[Record]:
    """Every record of both topics up to their current end (a bounded replay)."""
    k = settings.kafka
    source = kafka.make_source(k.client, k.bootstrap)
    try:
        tps = [(t, p) for t in (k.predictions_topic, k.labels_topic)
               for p in kafka.partitions_for(k.client, k.bootstrap, t)]
        source.assign({tp: 0 for tp in tps})
        ends = source.end_offsets(tps)
        done: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + 600
        while any(done.get(tp, 0) < end for tp, end in ends.items()) and time.monotonic() < deadline:
            batch = source.poll(20_000, 1.0)
            for r in batch:
                done[(r.topic, r.partition)] = r.offset + 1
            yield from batch
    finally:
        source.close()


def select_batches(records: Iterable[Record], settings: Settings, model: str, version: str,
                   from_ms: int | None, to_ms: int | None) -> tuple[list[Batch], dict[str, int]]:
    """The decoded events of one model version (in ``[from_ms, to_ms)`` when given) and the
    labels found alongside (event_id -> label), read in chunks."""
    dims: dict[str, int] = {}
    batches: list[Batch] = []
    labels: dict[str, int] = {}
    chunk: list[Record] = []

    def flush() -> None:
        preds = [r for r in chunk if r.topic != settings.kafka.labels_topic]
        labs = [r for r in chunk if r.topic == settings.kafka.labels_topic]
        out = decode.decode_predictions(preds, dims)
        batch = out.batches.get(model)
        if batch is not None:
            keep = batch.model_version == version
            if from_ms is not None:
                keep &= (batch.ts_ms >= from_ms) & (batch.ts_ms < to_ms)
            if keep.any():
                batches.append(batch.take(np.flatnonzero(keep)))
        ld = decode.decode_labels(labs)
        labels.update(zip(ld.event_id.tolist(), ld.label.tolist()))
        chunk.clear()

    for r in tqdm(records, desc="reading", unit="msg", disable=None, leave=False):
        chunk.append(r)
        if len(chunk) >= 20_000:
            flush()
    flush()
    return batches, labels


def slice_assigner(settings: Settings) -> WindowAssigner:
    """A detector-less assigner that names each event's slices as ``vitmon run`` does."""
    sl = settings.slices
    return WindowAssigner([], dimensions(sl.attributes, sl.crosses, sl.buckets),
                          SliceCatalog(sl.max_values), settings.windows.size_s * 1000)


def _slice_profiles(batches: list[Batch], assigner: WindowAssigner,
                    config: Any, version_profile: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One sub-profile per slice (besides ``all``) with at least ``MIN_SLICE_EVENTS`` events:
    drift detectors compare a slice's windows with its own reference (``profile["slices"]``).
    Slice embedding samples leave out the rows the version's PCA basis was fitted on (see
    ``exclude_embedding_ids`` of :func:`detectors.reference.build_reference_profile`)."""
    from detectors.reference import build_reference_profile

    rows: dict[str, list[Batch]] = {}
    for b in batches:
        joined = assigner.joined(assigner.slice_labels(b), len(b))
        names = np.array([j.split(SLICE_SEPARATOR)[1:] for j in joined], dtype=object)
        for name in {n for row in names for n in row}:
            rows.setdefault(name, []).append(
                b.take(np.flatnonzero([name in row for row in names])))
    fit_ids = version_profile.get("embedding", {}).get("pca_fit_ids", ())
    return {name: build_reference_profile(parts, config, fit_ids)
            for name, parts in sorted(rows.items())
            if sum(len(p) for p in parts) >= MIN_SLICE_EVENTS}


def capture(settings: Settings, model: str, version: str, *, file: Path | None = None,
            from_ms: int | None = None, to_ms: int | None = None,
            embedding_sample: int | None = None) -> Captured:
    """``embedding_sample`` overrides the reference embeddings each window is compared with
    (default 2,000): their sketch features are computed at every evaluation."""
    from detectors.performance import build_performance_profile
    from detectors.reference import ProfileConfig, build_reference_profile

    if file is not None:
        records = file_records(file, settings)
        source = f"file:{file.name}"
    else:
        records = topic_records(settings)
        source = f"range:{from_ms}..{to_ms}"
    batches, labels = select_batches(records, settings, model, version, from_ms, to_ms)
    n = sum(len(b) for b in batches)
    if n == 0:
        raise ValueError(f"no events of {model} {version} in {source}")
    config = ProfileConfig()
    if embedding_sample is not None:
        config = ProfileConfig(embedding_sample_size=embedding_sample)
    profile = build_reference_profile(batches, config)
    assigner = slice_assigner(settings)
    # Slices track the version's top classes, so their windows and references line up.
    top = tuple(int(c) for c in profile["prediction"]["top_classes"])
    profile["slices"] = _slice_profiles(batches, assigner, replace(config, classes=top),
                                        profile)
    conf, pred, lab, row_slices = [], [], [], []
    for b in batches:
        joined = assigner.joined(assigner.slice_labels(b), len(b))
        for i, eid in enumerate(b.event_id.tolist()):
            if eid in labels and not b.is_error[i]:
                conf.append(float(b.confidence[i]))
                pred.append(int(b.pred[i]))
                lab.append(labels[eid])
                row_slices.append(joined[i].split(SLICE_SEPARATOR))
    if len(lab) >= 50:
        profile["performance"] = build_performance_profile(
            np.asarray(conf), np.asarray(pred), np.asarray(lab), row_slices)
    else:
        log.warning("too few labels for a performance baseline labelled=%d", len(lab))
    return Captured(profile, n, len(lab), source)


def summary(c: Captured) -> dict[str, Any]:
    p = c.profile
    return {"n_events": c.n_events, "n_labelled": c.n_labelled,
            "numeric_features": sorted(p.get("numeric", {})),
            "categorical_features": sorted(p.get("categorical", {})),
            "embedding_dim": int(p.get("embedding", {}).get("dim", 0)),
            "accuracy": p.get("performance", {}).get("accuracy")}
