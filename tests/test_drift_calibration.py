"""Calibration: on stationary traffic each detector alerts in at most 2 * alpha of the windows,
also when it tests many slices (alpha is shared through EvalContext.n_tests).

200 windows per detector at alpha = 0.01, fixed seeds. Each window is a fresh sample of the same
traffic model the reference was drawn from. The measured rates are recorded in docs/drift.md
(``bench/drift.py --calibration`` reruns them with more windows).
"""

import numpy as np
import pytest

from detectors.embedding_drift import EmbeddingDrift
from detectors.feature_drift import FeatureDrift
from detectors.prediction_drift import PredictionDrift
from detectors.reference import ProfileConfig, build_reference_profile
from detectors.testing import context
from monitor.contract import ReferenceObserver, Status

ALPHA, WINDOWS = 0.01, 200


@pytest.fixture(scope="module")
def profile(traffic):
    rng = np.random.default_rng(2024)
    profile = build_reference_profile([traffic.batch(rng, 2000) for _ in range(10)],
                                      ProfileConfig(embedding_sample_size=500, pca_fit_size=1000,
                                                    pca_components=8))
    # Every slice of the multi-slice cases has its own reference (the same traffic's).
    profile["slices"] = {f"s{s}": dict(profile) for s in range(3)}
    return profile


def alarm_rate(det, traffic, profile, n_window, n_slices, seed):
    """Fraction of windows in which any of ``n_slices`` slices alerts."""
    rng = np.random.default_rng(seed)
    embeddings = det.name == "embedding_drift"
    alarms = 0
    for w in range(WINDOWS):
        statuses = []
        for s in range(n_slices):
            ctx = context(profile, ALPHA, n_tests=n_slices, slice=f"s{s}", window_start_ms=w)
            batch = traffic.batch(rng, n_window, embeddings=embeddings)
            state = (det.observe_with_reference(det.empty(), batch, ctx.reference)
                     if isinstance(det, ReferenceObserver) else det.observe(det.empty(), batch))
            statuses.append(det.evaluate(state, ctx)[0].status)
        alarms += Status.ALERT in statuses
    return alarms / WINDOWS


CASES = [
    ("feature_drift-bh", FeatureDrift(), 300, 1),
    ("feature_drift-bonferroni", FeatureDrift(correction="bonferroni"), 300, 1),
    ("feature_drift-chi2", FeatureDrift(numeric_test="chi2"), 300, 1),
    ("feature_drift-3-slices", FeatureDrift(), 150, 3),
    ("prediction_drift", PredictionDrift(), 300, 1),
    ("prediction_drift-3-slices", PredictionDrift(), 150, 3),
    # 200 events: Hotelling T^2 with its F null; 100 events: the permutation fallback (100
    # permutations, not the default 500, keep it fast: its level is exact for any number).
    ("embedding_drift", EmbeddingDrift(n_components=8), 200, 1),
    ("embedding_drift-3-slices", EmbeddingDrift(n_components=8, n_permutations=100), 100, 3),
]


@pytest.mark.parametrize("label,det,n_window,n_slices", CASES, ids=[c[0] for c in CASES])
def test_false_alarm_rate_within_two_alpha(label, det, n_window, n_slices, traffic, profile):
    rate = alarm_rate(det, traffic, profile, n_window, n_slices, seed=7)
    assert 0.0 <= rate <= 2 * ALPHA, f"{label}: {rate:.3f} of {WINDOWS} windows alerted"
