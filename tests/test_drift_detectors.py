"""The drift detectors over the plugin contract: statuses, mergeable state, round trips,
determinism and what the findings say when something really drifts."""

import json
import subprocess
import sys

import numpy as np
import pytest

from detectors._verdict import look_alpha
from detectors.embedding_drift import EmbeddingDrift
from detectors.feature_drift import FeatureDrift
from detectors.prediction_drift import PredictionDrift
from detectors.reference import ProfileConfig, build_reference_profile
from detectors.synthetic import Traffic
from detectors.testing import concat, context, states_equal
from monitor.contract import Detector, ReferenceObserver, Severity, Status

DETECTORS = [FeatureDrift(), PredictionDrift(), EmbeddingDrift(sample_size=150, n_components=8)]
IDS = [d.name for d in DETECTORS]


@pytest.fixture(scope="module")
def profile(traffic):
    rng = np.random.default_rng(100)
    return build_reference_profile([traffic.batch(rng, 1000) for _ in range(4)],
                                   ProfileConfig(embedding_sample_size=600, pca_fit_size=600,
                                                 pca_components=8))


@pytest.fixture
def parts(traffic):
    rng = np.random.default_rng(5)
    return [traffic.batch(rng, n) for n in (120, 7, 200)]


def observe(det, state, batch, profile=None):
    """What the core does: a ReferenceObserver observes against the active reference."""
    if isinstance(det, ReferenceObserver):
        return det.observe_with_reference(state, batch, context(profile).reference)
    return det.observe(state, batch)


def observe_all(det, *batches, profile=None):
    state = det.empty()
    for b in batches:
        state = observe(det, state, b, profile)
    return state


@pytest.mark.parametrize("det", DETECTORS, ids=IDS)
def test_satisfies_the_protocol(det):
    assert isinstance(det, Detector) and isinstance(det.version, int)
    doc = type(det).__doc__
    assert "Example" in doc and "Significance level" in doc and "Test" in doc


@pytest.mark.parametrize("det", DETECTORS, ids=IDS)
def test_no_reference_is_never_ok(det, parts):
    findings = det.evaluate(observe_all(det, *parts), context(None))
    assert [f.status for f in findings] == [Status.NO_REFERENCE]
    findings = det.evaluate(observe_all(det, *parts), context({"schema": "vitmon.reference/v1"}))
    assert findings[0].status is Status.NO_REFERENCE and findings[0].details["reason"]


@pytest.mark.parametrize("det", DETECTORS, ids=IDS)
def test_insufficient_data(det, parts, profile):
    for state in (det.empty(), observe(det, det.empty(), parts[1], profile)):  # 0 and 7 events
        findings = det.evaluate(state, context(profile, min_samples=30))
        assert findings[0].status is Status.INSUFFICIENT_DATA


@pytest.mark.parametrize("det", DETECTORS, ids=IDS)
def test_merge_equals_observing_everything(det, parts, profile):
    a, b, c = (observe(det, det.empty(), p, profile) for p in parts)
    whole = observe_all(det, concat(*parts), profile=profile)
    rtol = 0.0  # every state is integer sums or exact samples: merging is exact
    assert states_equal(det.merge(det.merge(a, b), c), whole, rtol)
    assert states_equal(det.merge(a, det.merge(b, c)), whole, rtol)
    assert states_equal(det.merge(c, det.merge(a, b)), whole, rtol)
    assert states_equal(observe_all(det, *parts, profile=profile), whole, rtol)
    assert states_equal(det.merge(det.empty(), a), a) and states_equal(det.merge(a, det.empty()), a)
    # The states' own == is content equality (floats to 1e-9), as the contract suite uses it.
    assert det.merge(det.merge(a, b), c) == whole and det.merge(a, b) != whole


@pytest.mark.parametrize("det", DETECTORS, ids=IDS)
def test_state_round_trip_continues_identically(det, parts, profile):
    state = observe_all(det, parts[0], parts[1], profile=profile)
    restored = det.loads(det.dumps(state))
    assert states_equal(restored, state) and restored == state
    assert states_equal(observe(det, restored, parts[2], profile),
                        observe(det, state, parts[2], profile))
    assert states_equal(det.loads(det.dumps(det.empty())), det.empty())
    ctx = context(profile)
    assert det.evaluate(observe(det, restored, parts[2], profile), ctx) == det.evaluate(
        observe(det, state, parts[2], profile), ctx)


@pytest.mark.parametrize("det", DETECTORS, ids=IDS)
def test_evaluate_is_deterministic_and_json_serialisable(det, parts, profile):
    state = observe_all(det, *parts, profile=profile)
    first, second = det.evaluate(state, context(profile)), det.evaluate(state, context(profile))
    assert first == second
    for f in first:
        json.dumps(f.details, allow_nan=False)
        assert f.detector == det.name and f.detector_version == det.version
    main = first[0]
    assert main.subject == "" and main.status in (Status.OK, Status.ALERT)
    assert main.threshold == pytest.approx(2.0)  # -log10(0.01)
    assert (main.score >= main.threshold) == (main.status is Status.ALERT)


def shifted(traffic, shift, n=400, seed=9):
    return traffic.batch(np.random.default_rng(seed), n, shift)


def test_feature_drift_names_what_changed(traffic, profile):
    det = FeatureDrift()
    findings = det.evaluate(det.observe(det.empty(), shifted(traffic, {"brightness": 0.06})),
                            context(profile))
    main, subs = findings[0], {f.subject: f for f in findings[1:]}
    assert main.status is Status.ALERT and main.severity is Severity.TICKET
    assert main.details["top_features"][0] == "image.brightness"
    assert subs["image.brightness"].status is Status.ALERT
    assert subs["image.brightness"].score > subs["image.brightness"].threshold
    assert subs["image.sharpness"].status is Status.OK
    hist = main.details["histograms"]["image.brightness"]
    assert len(hist["edges"]) == len(hist["reference"]) + 1 == len(hist["window"]) + 1


def test_feature_drift_on_a_categorical_attribute(traffic, profile):
    det = FeatureDrift()
    main = det.evaluate(det.observe(det.empty(), shifted(traffic, {"camera": 0.3})),
                        context(profile))[0]
    assert main.status is Status.ALERT and main.details["top_features"][0] == "attrs.camera_id"
    assert "cam-7" in main.details["histograms"]["attrs.camera_id"]["categories"][:1]


def test_feature_drift_chi2_variant_and_min_effect(traffic, profile):
    batch = shifted(traffic, {"brightness": 0.03}, n=3000)
    chi2 = FeatureDrift(numeric_test="chi2")
    main = chi2.evaluate(chi2.observe(chi2.empty(), batch), context(profile))[0]
    assert main.status is Status.ALERT and main.test == "chi2/bh"
    gated = FeatureDrift(min_effect=0.5)  # PSI 0.5: a shift this small only warns
    main = gated.evaluate(gated.observe(gated.empty(), batch), context(profile))[0]
    assert main.status is Status.WARN and main.severity is Severity.NONE


def test_prediction_drift_tests(traffic, profile):
    det = PredictionDrift()
    hard = det.evaluate(observe(det, det.empty(), shifted(traffic, {"hardness": 0.4}), profile),
                        context(profile))
    assert hard[0].status is Status.ALERT and hard[0].details["top_tests"][0] == "confidence"
    assert {f.subject for f in hard[1:]} == {"class_distribution", "confidence", "bbsd"}
    prior = det.evaluate(observe(det, det.empty(), shifted(traffic, {"prior": 0.3}), profile),
                         context(profile))
    assert prior[0].status is Status.ALERT
    assert "class_distribution" in prior[0].details["top_tests"]


def test_embedding_drift_alarms_and_explains(traffic, profile):
    det = EmbeddingDrift(sample_size=300, n_components=8)
    state = observe(det, det.empty(), shifted(traffic, {"embedding": 1.0}, n=1000), profile)
    main, mean, resid, centroid = det.evaluate(state, context(profile))
    assert main.status is Status.ALERT and main.p_value <= 0.01
    assert main.test == mean.test == resid.test == "weighted-mean+residual"
    assert mean.subject == "mean" and mean.score > mean.threshold
    assert mean.status is Status.ALERT and mean.p_value == main.details["p_mean"]
    assert resid.subject == "residual" and resid.p_value == main.details["p_residual"]
    assert centroid.subject == "centroid" and centroid.score > 0
    assert max(map(abs, main.details["component_shift"])) > 0.2  # in reference SDs
    dc = main.details["domain_classifier"]
    assert dc["auc"] > 0.55 and len(dc["most_new"]) == 10
    assert len(main.details["projection"]["window"]) == 200
    assert len(state.ids) == 300 and state.n == 1000  # bounded sample, sums over all


def test_embedding_centroid_threshold_and_dimension_check(traffic, profile):
    det = EmbeddingDrift(sample_size=100, n_components=4, centroid_threshold=0.0)
    state = observe(det, det.empty(), shifted(traffic, {}, n=200), profile)
    assert det.evaluate(state, context(profile))[3].status is Status.WARN
    other = Traffic(seed=1, dim=16).batch(np.random.default_rng(0), 100)
    findings = det.evaluate(observe(det, det.empty(), other, profile), context(profile))
    assert findings[0].status is Status.INSUFFICIENT_DATA
    assert "dimension" in findings[0].details["reason"]


@pytest.mark.parametrize("det", DETECTORS, ids=IDS)
def test_n_tests_is_a_bonferroni_factor_across_slices(det, traffic, profile):
    state = observe(det, det.empty(), shifted(traffic, {}, n=300), profile)
    one = det.evaluate(state, context(profile, n_tests=1))[0]
    many = det.evaluate(state, context(profile, n_tests=7))[0]
    assert many.p_value == pytest.approx(min(1.0, 7 * one.p_value))
    assert many.details["alpha_per_slice"] == pytest.approx(look_alpha(0.01, 0) / 7)


def test_embedding_small_windows_permute_as_often_as_the_level_needs():
    det = EmbeddingDrift(n_components=4, n_permutations=100, max_permutations=2000)
    rng = np.random.default_rng(0)
    t = Traffic(seed=2, dim=8)
    prof = build_reference_profile([t.batch(rng, 300)], ProfileConfig(
        embedding_sample_size=150, pca_fit_size=150, pca_components=4))
    state = observe(det, det.empty(), t.batch(rng, 100), prof)  # < min_f_events: permutations
    main = det.evaluate(state, context(prof, n_tests=1))[0]
    # The first look spends 0.9 alpha (detectors._verdict.look_alpha), and each of the two
    # statistics half of it: 2 / (0.009 / n) - 1.
    assert main.test == "weighted-mean+residual-permutation"
    assert main.details["n_permutations"] == 222
    assert det.evaluate(state, context(prof, n_tests=5))[0].details["n_permutations"] == 1111
    assert det.evaluate(state, context(prof, n_tests=50))[0].details["n_permutations"] == 2000


def test_detectors_import_no_io_libraries():
    code = ("import sys, detectors.feature_drift, detectors.embedding_drift, "
            "detectors.prediction_drift, detectors.reference, detectors.synthetic; "
            "bad = [m for m in ('kafka', 'confluent_kafka', 'sqlalchemy', 'streamlit', "
            "'prometheus_client', 'psycopg') if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
