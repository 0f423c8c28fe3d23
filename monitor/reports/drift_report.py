"""``vitmon report drift``: Evidently's data drift report for one window of one slice against the
model version's reference, the companion deep dive to vitmon's streaming ``feature_drift``.

The report needs raw rows on both sides, which vitmon does not keep:

* **window**: the predictions table has no image statistics, so the window's events are replayed
  from the predictions topic (a bounded replay up to the topic's current end, as
  ``vitmon reference capture --from/--to`` does) and filtered by model, version, event time and
  slice (the same slice assignment as ``vitmon run``). Retention must still hold the window.
* **reference**: a stored profile keeps sketches, not rows. By default the reference rows are
  *sampled* from the profile's fine-grid sketches (each numeric feature independently: bins drawn
  by their counts, uniform within a bin of about 0.2 % relative width; categories by their
  counts), which reproduces every marginal distribution — all a per-column drift report compares
  — but not the correlations between features. ``--reference-file F.jsonl`` (the file the
  reference was captured from) uses the real rows instead, and is preferred when it is at hand.
  As for the detectors, a slice is compared with its own reference (the profile's
  ``slices.<slice>`` sub-profile, or the file's rows of that slice) when the profile has one,
  else with the whole version's.

The columns are the features ``feature_drift`` tests against that reference: ``confidence``,
``latency_ms``, ``image.*`` (numeric) and ``attrs.*`` (categorical).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from monitor.app.config import Settings
from monitor.contract import Batch
from monitor.core.ingest.records import Record
from monitor.core.windows import SLICE_SEPARATOR
from monitor.errors import VitmonError
from monitor.reports.reference_capture import (
    file_records,
    select_batches,
    slice_assigner,
    topic_records,
)
from monitor.store import references

log = logging.getLogger(__name__)

#: Rows drawn from a profile's sketches when no reference file is given.
DEFAULT_REFERENCE_ROWS = 5000


def _evidently() -> Any:
    """Evidently's API, or a one-line error naming the package to install."""
    try:
        import evidently
        from evidently.presets import DataDriftPreset
    except ImportError as exc:
        raise VitmonError("vitmon report drift needs the 'evidently' package (and pandas < 3): "
                          f"pip install 'vitmon[test]' or pip install evidently ({exc})") from None
    return evidently, DataDriftPreset


@dataclass(frozen=True)
class Columns:
    """The report's columns: the numeric and categorical features of the reference profile."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @classmethod
    def of(cls, profile: Mapping[str, Any]) -> Columns:
        return cls(tuple(sorted(profile.get("numeric", {}))),
                   tuple(sorted(profile.get("categorical", {}))))


def batch_columns(batch: Batch, cols: Columns) -> dict[str, np.ndarray]:
    """The report's columns of a batch; a feature the batch lacks is all-missing."""
    n = len(batch)
    numeric = {"confidence": batch.confidence.astype(np.float64), "latency_ms": batch.latency_ms,
               **{f"image.{k}": v for k, v in batch.image.items()}}
    out: dict[str, np.ndarray] = {}
    for c in cols.numeric:
        out[c] = np.asarray(numeric.get(c, np.full(n, np.nan)), dtype=np.float64)
    for c in cols.categorical:
        values = batch.attrs.get(c.removeprefix("attrs."))
        out[c] = (np.full(n, None, dtype=object) if values is None
                  else np.asarray(values, dtype=object))
    return out


def sample_profile(profile: Mapping[str, Any], cols: Columns, n: int,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` rows drawn from the profile's per-feature sketches (marginals only)."""
    from detectors.stats import histograms as hist

    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for c in cols.numeric:
        p = profile["numeric"][c]
        counts = np.asarray(p["grid_counts"], dtype=np.float64)
        edges = hist.bin_edges(hist.Grid.parse(p["grid"]), int(p["grid_lo"]), counts.size)
        missing = float(p["n_missing"]) / max(float(p["n"]) + float(p["n_missing"]), 1.0)
        bins = rng.choice(counts.size, size=n, p=counts / counts.sum())
        x = edges[bins] + rng.random(n) * (edges[bins + 1] - edges[bins])
        x[rng.random(n) < missing] = np.nan
        out[c] = x
    for c in cols.categorical:
        p = profile["categorical"][c]
        names = [*map(str, p["categories"]), "other"]
        counts = np.append(np.asarray(p["counts"], dtype=np.float64), float(p["other"]))
        out[c] = np.asarray(names, dtype=object)[rng.choice(len(names), size=n,
                                                            p=counts / counts.sum())]
    return out


def _rows(records: Iterable[Record], settings: Settings, model: str, version: str,
          cols: Columns, window: tuple[int, int] | None, slice_name: str) -> dict[str, np.ndarray]:
    lo, hi = window if window is not None else (None, None)
    batches, _ = select_batches(records, settings, model, version, lo, hi)
    assigner = slice_assigner(settings)
    parts: list[dict[str, np.ndarray]] = []
    for b in batches:
        b = b.take(np.flatnonzero(~b.is_error))  # error events carry no prediction or image
        if slice_name != "all":
            joined = assigner.joined(assigner.slice_labels(b), len(b))
            b = b.take(np.flatnonzero([slice_name in j.split(SLICE_SEPARATOR) for j in joined]))
        parts.append(batch_columns(b, cols))
    return {c: np.concatenate([p[c] for p in parts]) if parts else np.zeros(0)
            for c in (*cols.numeric, *cols.categorical)}


def write_report(reference: Mapping[str, np.ndarray], current: Mapping[str, np.ndarray],
                 cols: Columns, out: Path, title: str) -> dict[str, Any]:
    """Run Evidently's ``DataDriftPreset`` and save its HTML; returns the per-column results."""
    evidently, preset = _evidently()
    import pandas as pd

    definition = evidently.DataDefinition(numerical_columns=list(cols.numeric),
                                          categorical_columns=list(cols.categorical))
    datasets = [evidently.Dataset.from_pandas(pd.DataFrame(dict(frame)),
                                              data_definition=definition)
                for frame in (current, reference)]
    snapshot = evidently.Report([preset()], metadata={"title": title}).run(*datasets)
    out.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(out))
    return snapshot.dict()


def drift_report(settings: Settings, engine: Engine, model: str, version: str, slice_name: str,
                 window_start_ms: int, out: Path, reference_file: Path | None = None,
                 reference_rows: int = DEFAULT_REFERENCE_ROWS) -> dict[str, Any]:
    """Write the report for one window; returns a summary (row counts, source, drifted columns)."""
    _evidently()  # fail before a replay, not after it
    with engine.connect() as conn:
        ref = references.active(conn, model, version)
    if ref is None:
        raise VitmonError(f"no active reference for {model} {version}: "
                          "vitmon reference capture first")
    own = ref.profile.get("slices", {}).get(slice_name)
    profile = own if own is not None else ref.profile
    cols = Columns.of(profile)
    size_ms = settings.windows.size_s * 1000
    start = window_start_ms - window_start_ms % size_ms
    window = (start, start + size_ms)
    current = _rows(topic_records(settings), settings, model, version, cols, window, slice_name)
    n_current = len(next(iter(current.values()), ()))
    if n_current == 0:
        raise VitmonError(f"no events of {model} {version} in slice {slice_name} of the window "
                          f"starting at {start} (ms) on the predictions topic")
    if reference_file is not None:
        reference = _rows(file_records(reference_file, settings), settings, model, version, cols,
                          None, slice_name if own is not None else "all")
        source = f"file:{reference_file.name}"
    else:
        reference = sample_profile(profile, cols, reference_rows)
        source = f"sampled from reference {ref.reference_id}"
    source += f", {slice_name if own is not None else 'whole version'}"
    title = f"{model} {version} {slice_name} window {start}: drift vs reference ({source})"
    result = write_report(reference, current, cols, out, title)
    drifted = next((m["value"] for m in result["metrics"]
                    if m["config"].get("type", "").endswith("DriftedColumnsCount")), {})
    return {"out": str(out), "window_start_ms": start, "slice": slice_name,
            "n_window": n_current, "n_reference": len(next(iter(reference.values()), ())),
            "reference": source, "columns": len(cols.numeric) + len(cols.categorical),
            "drifted_columns": int(drifted.get("count", 0))}
