"""prediction_drift v2: state bounded by the top-K classes whatever the head, weighted test
families (the class-mix test is not diluted by the per-class BBSD tests), per-slice references
and old v1 states."""

import numpy as np
import pytest

from detectors._verdict import look_alpha
from detectors.prediction_drift import PredictionDrift
from detectors.reference import build_reference_profile
from detectors.testing import context, make_batch
from monitor.contract import ConfigError, Status, encode_value


def softmax_batch(rng, n, n_classes, prior=None, temperature=1.0):
    label = rng.choice(n_classes, n, p=prior)
    logits = rng.normal(0, 1, (n, n_classes)) + 6.0 * np.eye(n_classes)[label]
    p = np.exp((logits - logits.max(1, keepdims=True)) / temperature)
    return make_batch(n, rng, probs=p / p.sum(1, keepdims=True))


def zipf(n_classes):
    w = 1.0 / np.arange(1, n_classes + 1)
    return w / w.sum()


@pytest.mark.parametrize("n_classes", [50, 1000])
def test_state_does_not_grow_with_the_head(n_classes):
    det = PredictionDrift(top_classes=20)
    rng = np.random.default_rng(n_classes)
    prof = build_reference_profile([softmax_batch(rng, 3000, n_classes, zipf(n_classes))])
    ref = context(prof).reference
    state = det.observe_with_reference(det.empty(), softmax_batch(rng, 2000, n_classes,
                                                                  zipf(n_classes)), ref)
    assert state.class_counts.shape == (21,) and state.probs_counts.shape[0] == 21
    assert state.classes == tuple(int(c) for c in prof["prediction"]["top_classes"])
    size = len(det.dumps(state))
    print(f"\nprediction_drift state, {n_classes} classes, top-20 + other: {size} bytes")
    assert size <= 64 * 1024
    main = det.evaluate(state, context(prof))[0]
    assert main.status is Status.OK and main.details["n_tests_in_family"] == 1 + 1 + 21


def test_class_mix_is_judged_at_its_family_weight_not_diluted():
    det = PredictionDrift()
    rng = np.random.default_rng(1)
    prof = build_reference_profile([softmax_batch(rng, 4000, 30, zipf(30))])
    state = det.observe_with_reference(det.empty(), softmax_batch(rng, 1500, 30, zipf(30)),
                                       context(prof).reference)
    main = det.evaluate(state, context(prof, n_tests=17))[0]
    tests = {t["subject"]: t for t in main.details["tests"]}
    mix = tests["class_distribution"]
    # Weighted Bonferroni: 0.3 of alpha for the class mix, alone in its family (and the first
    # look's 0.9 share of alpha, detectors._verdict.look_alpha).
    spend = 0.01 / look_alpha(0.01, 0)
    assert mix["p_adjusted"] == pytest.approx(min(1.0, mix["p_value"] * 17 / 0.3 * spend))
    assert main.details["family_weights"] == {"class_mix": 0.3, "confidence": 0.3, "bbsd": 0.4}
    # A prior shift the class-mix test finds at its own weight.
    moved = det.observe_with_reference(
        det.empty(), softmax_batch(rng, 1500, 30, 0.85 * zipf(30) + 0.15 * np.eye(30)[5]),
        context(prof).reference)
    main = det.evaluate(moved, context(prof, n_tests=17))[0]
    assert main.status is Status.ALERT and "class_distribution" in main.details["top_tests"]


def test_family_weights_are_checked():
    with pytest.raises(ConfigError, match="family_weights"):
        PredictionDrift(family_weights=(0.5, 0.5, 0.5))
    assert PredictionDrift(family_weights=[0.2, 0.2, 0.6]).family_weights == (0.2, 0.2, 0.6)


def test_slice_without_reference_and_v1_state():
    det = PredictionDrift()
    rng = np.random.default_rng(2)
    prof = build_reference_profile([softmax_batch(rng, 2000, 10)])
    state = det.observe_with_reference(det.empty(), softmax_batch(rng, 500, 10),
                                       context(prof).reference)
    main, = det.evaluate(state, context(prof, slice="camera_id=new"))
    assert main.status is Status.NO_REFERENCE
    assert main.details["reason"] == "no reference for this slice"
    with_slice = {**prof, "slices": {"camera_id=new": prof}}
    assert det.evaluate(state, context(with_slice, slice="camera_id=new"))[0].status is Status.OK
    old = det.loads(encode_value({"n": 5, "class_counts": np.arange(1000),
                                  "probs_counts": np.zeros((1000, 3), np.int32)}))
    assert det.evaluate(old, context(prof))[0].status is Status.INSUFFICIENT_DATA
