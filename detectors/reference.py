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
    ``top_classes``                      int64 [K]: the classes tracked one by one (the K most
                                         frequent unless given), the rest pooled as "other"
    ``confidence``                       the confidence histogram, as a ``numeric.<f>`` entry
    ``probs_counts``                     int32 [K + 1, bins] softmax sketch of each tracked class
                                         and of the mass on all others (BBSD); a v1 profile has
                                         one row per class and no ``top_classes``
    ``probs_grid``                       its grid spec
``embedding``                            read by ``embedding_drift`` (absent without embeddings):
    ``n``, ``dim``                       embeddings folded in, their dimension
    ``mean``                             float64 [dim] mean over all reference embeddings
    ``sample``, ``sample_ids``           float32 [k, dim] bottom-k sample and its event ids
    ``pca_mean``, ``pca_components``     float64 [dim], [dim, q] principal axes
    ``pca_explained_variance``           float64 [q] variance along each axis
    ``pca_fit_n``                        rows the basis was fitted on (disjoint from ``sample``)
    ``pca_fit_ids``                      their event ids (kept out of slice sub-profiles' samples)
    ``bandwidth_sigma2``                 float64 [q]: median squared distance of the projected
                                         sample on the first 1..q axes (the MMD kernel's
                                         median-heuristic bandwidth for each choice of q)
``slices.<s>``                           optional, added by ``vitmon reference capture``: per
                                         slice ``<s>`` (e.g. ``camera_id=cam-03``) with enough
                                         reference events, a profile of that slice's events
                                         alone (the keys above; ``top_classes`` the version's);
                                         the drift detectors compare the slice's windows with
                                         it, and a slice without one gets no verdict
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.batches import make_batch
from detectors.feature_drift import FeatureDrift, categorical_entries, grid_for, numeric_entry
from detectors.prediction_drift import (
    PROBS_GRID,
    PredictionDrift,
    PredictionDriftState,
    count_probs,
    fold_classes,
    top_classes,
)
from detectors.stats import embeddings as emb
from detectors.stats import histograms as hist
from monitor.contract import Batch

SCHEMA = "vitmon.reference/v1"


@dataclass(frozen=True)
class ProfileConfig:
    """How a reference profile is built. Sizes bound its memory and storage."""

    n_bins: int = 10  # quantile bins per numeric feature (PSI, chi-square, JS, UI histograms)
    max_categories: int = 256
    embedding_sample_size: int = 2000  # rows each window is compared with (embedding_drift)
    pca_fit_size: int = 2000  # further rows the PCA basis is fitted on
    pca_components: int = 32
    top_classes: int = 20  # classes with their own softmax sketch (BBSD); the rest is "other"
    classes: tuple[int, ...] | None = None  # those classes given (a slice uses its version's)
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
                            config: ProfileConfig = ProfileConfig(),
                            exclude_embedding_ids: Iterable[str] = ()) -> dict[str, Any]:
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
    exclude_embedding_ids
        Events kept out of the embedding sample (they still count in its moments). A slice's
        sub-profile passes its version's ``pca_fit_ids``: the slice is tested on the version's
        basis, and rows that basis was fitted on are not like fresh traffic on it (more
        variance along its axes, less off them), so a slice sample holding them would alarm on
        stationary traffic -- half a group-sized slice's sample would be such rows.

    Returns
    -------
    dict
        The profile; its keys are documented in this module's docstring.
    """
    attrs = None if config.attrs is None else tuple(f"attrs.{a}" for a in config.attrs)
    fd = FeatureDrift(features=config.features, attrs=attrs, max_categories=config.max_categories,
                      exclude=())  # the profile keeps latency_ms, for whoever tests it
    es = _EmbeddingSample(config.embedding_sample_size + config.pca_fit_size,
                          exclude=frozenset(exclude_embedding_ids))
    fs = fd.empty()
    batches = list(_as_batches(data))  # two passes: the top classes first, then their softmax
    classes = np.zeros(0, np.int64)
    for batch in batches:
        fs = fd.observe(fs, batch)
        es.observe(batch)
        pred = np.asarray(batch.pred)
        counts = np.bincount(pred[pred >= 0])
        size = max(classes.size, counts.size)
        classes = np.pad(classes, (0, size - classes.size)) + np.pad(counts, (0, size - counts.size))
    top = config.classes if config.classes is not None else top_classes(classes,
                                                                        config.top_classes)
    pd_ = PredictionDrift(top_classes=len(top))
    ps = pd_.empty()
    for batch in batches:
        ps = pd_.merge(ps, _prediction_part(batch, top))
    profile: dict[str, Any] = {"schema": SCHEMA, "n_events": float(fs.n)}
    profile["numeric"] = {k: _numeric_entry(k, fs.num_lo[k], fs.num_counts[k], fs.n,
                                            config.n_bins) for k in fs.num_counts}
    profile["categorical"] = categorical_entries(fs)
    profile["prediction"] = _prediction(ps, classes, config.n_bins)
    if es.n:
        profile["embedding"] = _embedding(es, config)
    return profile


@dataclass
class _EmbeddingSample:
    """Moments of every reference embedding and a bottom-k sample of them (by event-id hash:
    uniform and independent of the order of the batches)."""

    k: int
    #: ids never sampled (see ``exclude_embedding_ids``); still counted in ``n``/``total``
    exclude: frozenset[str] = frozenset()
    n: int = 0
    total: np.ndarray | None = None  # float64 [dim]
    ids: tuple[str, ...] = ()
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    sample: np.ndarray | None = None  # float32 [k, dim]

    def observe(self, batch: Batch) -> None:
        rows = np.flatnonzero(batch.has_embedding) if batch.embedding.shape[1] else []
        if len(rows) == 0:
            return
        x = np.asarray(batch.embedding[rows], np.float32)
        total = x.astype(np.float64).sum(0)
        self.total = total if self.total is None else self.total + total
        self.n += len(rows)
        if self.exclude:
            allowed = np.fromiter((e not in self.exclude for e in batch.event_id[rows]), bool,
                                  len(rows))
            rows, x = rows[allowed], x[allowed]
        ids = np.asarray(self.ids + tuple(batch.event_id[rows].tolist()), dtype=object)
        hashes = np.concatenate([self.hashes, emb.event_hashes(ids[len(self.ids):])])
        pool = x if self.sample is None else np.concatenate([self.sample, x])
        keep = emb.bottom_k(hashes, ids, self.k)
        self.hashes, self.ids, self.sample = hashes[keep], tuple(ids[keep].tolist()), pool[keep]


def _prediction_part(batch: Batch, top: tuple[int, ...]) -> PredictionDriftState:
    """A batch's prediction sketch on the given tracked classes (as a window keeps it)."""
    pred = np.asarray(batch.pred)
    lo, conf = hist.count(hist.UNIT, batch.confidence)
    probs = (count_probs(batch.probs[batch.has_probs], top)
             if batch.probs.shape[1] and np.any(batch.has_probs)
             else np.zeros((0, PROBS_GRID.unit_bins), np.int32))
    return PredictionDriftState(classes=top, n=len(batch),
                                class_counts=fold_classes(np.bincount(pred[pred >= 0]), top),
                                conf_lo=lo, conf_counts=conf, probs_counts=probs)


def _prediction(s: PredictionDriftState, classes: np.ndarray, n_bins: int) -> dict[str, Any]:
    n = int(classes.sum())
    return {"n": float(n), "class_counts": classes.astype(np.int64),
            "class_freq": classes / n if n else classes.astype(np.float64),
            "top_classes": np.asarray(s.classes, np.int64),
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
            # the fit rows, so that slice sub-profiles can leave them out of their samples
            "pca_fit_ids": np.asarray(s.ids[n_sample:] if k - n_sample >= 2 else (), dtype=str),
            "bandwidth_sigma2": emb.median_heuristic_by_prefix(emb.project(sample, mean, comps))}
