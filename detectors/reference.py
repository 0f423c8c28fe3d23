"""Reference profiles: what "normal" looks like for one model version, as plain arrays.

:func:`build_reference_profile` folds reference batches through the same sketches the detectors
keep per window (so a reference of any length costs bounded memory, and window and reference are
binned identically), then derives quantile bins, frequencies, an embedding sample and a PCA
basis. The profile is a dict of numpy arrays, floats, strings and dicts (stored by the service as
JSON, arrays as ``.npy``); scalars are floats. Keys (``<f>`` is a feature name):

``schema``                               ``"vitmon.reference/v1"``
``n_events``                             events folded in
``numeric.<f>``                          per numeric feature (``confidence``, ``latency_ms``,
                                         ``image.*``); read by ``feature_drift``:
    ``grid``                             grid spec of the sketch, e.g. ``"real:0.002:0.001"``
    ``grid_lo``, ``grid_counts``         the fine-grid sketch (first bin, int64 counts)
    ``cut_index``                        int64 grid bins where the quantile bins start
    ``edges``                            float64 quantile-bin edges in data units (len = bins + 1)
    ``counts``                           int64 reference counts per quantile bin
    ``n``, ``n_missing``, ``mean``, ``std``   non-missing count, missing count, moments
``categorical.attrs.<a>``                per categorical attribute; read by ``feature_drift``:
    ``categories``                       str array of kept categories (at most ``max_categories``)
    ``counts``                           int64 counts of those categories
    ``other``                            count of the categories not kept
    ``n``, ``n_missing``
``prediction``                           read by ``prediction_drift``:
    ``n``                                events with a prediction
    ``class_counts``, ``class_freq``     int64 / float64 per class index
    ``confidence``                       the confidence histogram, as a ``numeric.<f>`` entry
    ``probs_counts``                     int32 [classes, bins] per-class softmax sketch (BBSD)
    ``probs_grid``                       its grid spec
``embedding``                            read by ``embedding_drift`` (absent without embeddings):
    ``n``, ``dim``                       embeddings folded in, their dimension
    ``mean``                             float64 [dim] mean over all reference embeddings
    ``sample``, ``sample_ids``           float32 [k, dim] bottom-k sample and its event ids
    ``pca_mean``, ``pca_components``     float64 [dim], [dim, q] principal axes
    ``pca_explained_variance``           float64 [q] variance along each axis
    ``pca_fit_n``                        rows the basis was fitted on (disjoint from ``sample``)
    ``bandwidth_sigma2``                 float64 [q]: median squared distance of the projected
                                         sample on the first 1..q axes (the MMD kernel's
                                         median-heuristic bandwidth for each choice of q)
``slices.<s>``                           optional, added by ``vitmon reference capture``: per
                                         slice ``<s>`` (e.g. ``camera_id=cam-03``) with enough
                                         reference events, a profile of that slice's events
                                         alone (the keys above); the drift detectors compare the
                                         slice's windows with it instead of the whole version
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.batches import make_batch
from detectors.embedding_drift import EmbeddingDrift
from detectors.feature_drift import FeatureDrift, categorical_entries, grid_for, numeric_entry
from detectors.prediction_drift import PROBS_GRID, PredictionDrift, PredictionDriftState
from detectors.stats import embeddings as emb
from detectors.stats.mmd import median_heuristic_by_prefix
from monitor.contract import Batch

SCHEMA = "vitmon.reference/v1"


@dataclass(frozen=True)
class ProfileConfig:
    """How a reference profile is built. Sizes bound its memory and storage."""

    n_bins: int = 10  # quantile bins per numeric feature (PSI, chi-square, JS, UI histograms)
    max_categories: int = 256
    embedding_sample_size: int = 2000  # rows MMD compares each window with
    pca_fit_size: int = 2000  # further rows the PCA basis is fitted on
    pca_components: int = 32
    features: tuple[str, ...] | None = None  # numeric features; None: all found
    attrs: tuple[str, ...] | None = None  # categorical attrs (without "attrs."); None: all


def _numeric_entry(name: str, lo: int, counts: np.ndarray, n_rows: int,
                   n_bins: int) -> dict[str, Any]:
    grid = grid_for(name) if name != "__probs__" else PROBS_GRID
    return numeric_entry(grid, lo, counts, n_rows, n_bins)


def _as_batches(data: Batch | Mapping[str, Any] | Iterable[Batch | Mapping[str, Any]]
                ) -> Iterable[Batch]:
    if isinstance(data, (Batch, Mapping)):
        data = [data]
    for item in data:
        if isinstance(item, Batch):
            yield item
        else:  # a mapping of columns, as accepted by detectors.batches.make_batch
            cols = dict(item)
            n = len(next(v for k, v in cols.items() if k not in ("image", "attrs")))
            yield make_batch(n, None, **cols)


def build_reference_profile(data: Batch | Mapping[str, Any] | Iterable[Batch | Mapping[str, Any]],
                            config: ProfileConfig = ProfileConfig()) -> dict[str, Any]:
    """Build a reference profile from batches (or mappings of columns) of reference events.

    Parameters
    ----------
    data
        One :class:`~monitor.contract.Batch`, a mapping of columns (``event_id``, ``latency_ms``,
        ``probs``, ``embedding``, ``image``, ``attrs``, ... as for
        :func:`detectors.batches.make_batch`), or an iterable of either. Event ids must be
        unique: they choose the embedding sample.
    config
        Bin counts and sample sizes.

    Returns
    -------
    dict
        The profile; its keys are documented in this module's docstring.
    """
    attrs = None if config.attrs is None else tuple(f"attrs.{a}" for a in config.attrs)
    fd = FeatureDrift(features=config.features, attrs=attrs, max_categories=config.max_categories,
                      exclude=())  # the profile keeps latency_ms, for whoever tests it
    pd_ = PredictionDrift()
    ed = EmbeddingDrift(sample_size=config.embedding_sample_size + config.pca_fit_size)
    fs, ps, es = fd.empty(), pd_.empty(), ed.empty()
    for batch in _as_batches(data):
        fs, ps, es = fd.observe(fs, batch), pd_.observe(ps, batch), ed.observe(es, batch)
    profile: dict[str, Any] = {"schema": SCHEMA, "n_events": float(fs.n)}
    profile["numeric"] = {k: _numeric_entry(k, fs.num_lo[k], fs.num_counts[k], fs.n,
                                            config.n_bins) for k in fs.num_counts}
    profile["categorical"] = categorical_entries(fs)
    profile["prediction"] = _prediction(ps, config.n_bins)
    if es.n:
        profile["embedding"] = _embedding(es, config)
    return profile


def _prediction(s: PredictionDriftState, n_bins: int) -> dict[str, Any]:
    n = int(s.class_counts.sum())
    return {"n": float(n), "class_counts": s.class_counts,
            "class_freq": s.class_counts / n if n else s.class_counts.astype(np.float64),
            "confidence": _numeric_entry("confidence", s.conf_lo, s.conf_counts, s.n, n_bins),
            "probs_counts": s.probs_counts, "probs_grid": PROBS_GRID.spec}


def _embedding(s: Any, config: ProfileConfig) -> dict[str, Any]:
    """Split the bottom-k sample: the test sample, and disjoint rows for the PCA basis.

    Why disjoint: the top principal axes of a sample overfit it (its variance along them is
    inflated, markedly so with 768 dimensions and a few thousand rows), so a reference sample
    projected on its own axes would differ from any fresh window and MMD would alarm on
    stationary traffic.
    """
    k = len(s.ids)
    want = config.embedding_sample_size + config.pca_fit_size
    n_sample = k if k < 4 else min(config.embedding_sample_size,
                                   int(round(k * config.embedding_sample_size / want)))
    fit = s.sample[n_sample:] if k - n_sample >= 2 else s.sample
    mean, comps, var = emb.fit_pca(fit, config.pca_components)
    sample = s.sample[:n_sample]
    return {"n": float(s.n), "dim": float(s.total.size), "mean": s.total / s.n,
            "sample": sample, "sample_ids": np.asarray(s.ids[:n_sample], dtype=str),
            "pca_mean": mean, "pca_components": comps, "pca_explained_variance": var,
            "pca_fit_n": float(len(fit)),
            "bandwidth_sigma2": median_heuristic_by_prefix(emb.project(sample, mean, comps))}
