"""The performance detector: metrics equal scikit-learn's, insufficient data below sample size or
coverage, regression severities, per-slice baselines, and the label-free (CBPE) estimate."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from detectors.performance import Performance, build_performance_profile
from detectors.stats import calibration as cal
from detectors.testing import context, make_batch
from monitor.contract import LabelledBatch, Severity, Status


def _model(rng, n, shift=0.0, n_classes=6):
    """A calibrated model: confidence c is right with probability c; ``shift`` makes inputs
    harder (lower confidence, hence lower accuracy)."""
    conf = np.clip(rng.beta(8, 2, n) - shift, 0.05, 1.0)
    label = rng.integers(0, n_classes, n)
    right = rng.random(n) < conf
    pred = np.where(right, label, (label + rng.integers(1, n_classes, n)) % n_classes)
    return conf, label, pred


def _labels(conf, label, pred, rows=None, weight=1):
    rows = np.arange(len(pred)) if rows is None else rows
    k = len(rows)
    return LabelledBatch(np.arange(k).astype(object), np.zeros(k, np.int64),
                         pred[rows].astype(np.int32), label[rows].astype(np.int64),
                         np.full(k, weight, np.int64), conf[rows].astype(np.float32),
                         np.zeros(k, bool))


def _state(det, conf, label, pred, labelled=None):
    s = det.observe(det.empty(), make_batch(len(pred), pred=pred, confidence=conf))
    return det.observe_labels(s, _labels(conf, label, pred, labelled))


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    conf, label, pred = _model(rng, 18_000)
    # The weak camera sees harder inputs (lower confidence, lower accuracy, still calibrated):
    # its own baseline, not the average, judges it.
    w_conf, w_label, w_pred = _model(rng, 2_000, shift=0.1)
    slices = [["all", "camera=ok"]] * 18_000 + [["all", "camera=weak"]] * 2_000
    return build_performance_profile(np.concatenate([conf, w_conf]),
                                     np.concatenate([pred, w_pred]),
                                     np.concatenate([label, w_label]), slices)


def test_metrics_equal_scikit_learn():
    rng = np.random.default_rng(1)
    conf, label, pred = _model(rng, 3000, n_classes=7)
    pred[:40] = 9  # a class predicted but never labelled counts in the macro average
    det = Performance()
    (main, _) = det.evaluate(_state(det, conf, label, pred), context(None))
    d = main.details
    assert main.status is Status.NO_REFERENCE
    assert d["accuracy"] == pytest.approx(accuracy_score(label, pred), abs=1e-12)
    for name, fn in (("macro_precision", precision_score), ("macro_recall", recall_score),
                     ("macro_f1", f1_score)):
        assert d[name] == pytest.approx(fn(label, pred, average="macro", zero_division=0), abs=1e-12)
    per_class = recall_score(label, pred, average=None, labels=np.arange(7), zero_division=0)
    assert {int(k): v for k, v in d["class_recall"].items()} == pytest.approx(dict(enumerate(per_class)))
    assert d["coverage"] == 1.0 and d["labelled"] == 3000
    lo, hi = d["accuracy_ci"]
    assert lo < d["accuracy"] < hi


def test_insufficient_under_min_samples_or_coverage_but_estimate_still_shown(reference):
    rng = np.random.default_rng(2)
    conf, label, pred = _model(rng, 1000)
    det = Performance(min_coverage=0.2)
    ctx = context({"performance": reference}, min_samples=50)
    few = _state(det, conf, label, pred, np.arange(40))
    main, est = det.evaluate(few, ctx)
    assert main.status is Status.INSUFFICIENT_DATA and "need 50" in main.details["reason"]
    assert est.status is Status.OK and main.details["estimated_accuracy"] is not None
    sparse = _state(det, conf, label, pred, np.arange(150))
    main, _ = det.evaluate(sparse, ctx)
    assert main.status is Status.INSUFFICIENT_DATA and "coverage 15.0%" in main.details["reason"]
    main, _ = det.evaluate(_state(det, conf, label, pred, np.arange(300)), ctx)
    assert main.status is Status.OK


@pytest.mark.parametrize("wrong, status, severity", [
    (0.0, Status.OK, Severity.NONE), (0.05, Status.ALERT, Severity.TICKET),
    (0.25, Status.ALERT, Severity.PAGE)])
def test_regression_severity_ticket_or_page(reference, wrong, status, severity):
    rng = np.random.default_rng(3)
    conf, label, pred = _model(rng, 4000)
    broken = rng.random(4000) < wrong
    pred = np.where(broken, (label + 1) % 6, pred)
    det = Performance()
    main, _ = det.evaluate(_state(det, conf, label, pred), context({"performance": reference}))
    assert (main.status, main.severity) == (status, severity)
    assert (main.score >= main.threshold) == (status is Status.ALERT)


def test_bonferroni_across_slices_and_slice_baselines(reference):
    rng = np.random.default_rng(4)
    conf, label, pred = _model(rng, 800)
    pred = np.where(rng.random(800) < 0.04, (label + 1) % 6, pred)  # a small drop
    det = Performance(min_drop=0.0)
    s = _state(det, conf, label, pred)
    one = det.evaluate(s, context({"performance": reference}))[0]
    many = det.evaluate(s, context({"performance": reference}, n_tests=200))[0]
    assert many.p_value == pytest.approx(min(1.0, one.p_value * 200))
    # The weak camera (5 points worse in the reference) is judged against its own baseline.
    weak = det.evaluate(s, context({"performance": reference}, slice="camera=weak"))[0]
    assert weak.details["reference_scope"] == "slice"
    assert weak.details["reference_accuracy"] < one.details["reference_accuracy"]
    assert weak.p_value > one.p_value
    # A slice without a baseline of its own is not judged against the whole version (issue 12:
    # a new or small camera compared with the fleet alarmed for ever).
    other = det.evaluate(s, context({"performance": reference}, slice="camera=new"))
    assert [f.status for f in other] == [Status.NO_REFERENCE, Status.NO_REFERENCE]
    assert other[0].details["reason"] == other[1].details["reason"] == "no reference for this slice"


def test_label_free_estimate_tracks_realised_accuracy_under_harder_inputs(reference):
    det = Performance()
    ctx = context({"performance": reference})
    errors = []
    for shift in (0.0, 0.1, 0.2, 0.3):
        conf, label, pred = _model(np.random.default_rng(10 + int(shift * 10)), 5000, shift)
        main, est = det.evaluate(_state(det, conf, label, pred), ctx)
        errors.append(abs(est.details["estimated_accuracy"] - main.details["accuracy"]))
        assert est.status is (Status.WARN if shift >= 0.1 else Status.OK)
    assert max(errors) < 0.02, errors


def test_state_algebra_merge_retraction_round_trip():
    rng = np.random.default_rng(6)
    conf, label, pred = _model(rng, 1000)
    det = Performance()
    whole = _state(det, conf, label, pred)
    a = _state(det, conf[:400], label[:400], pred[:400])
    b = _state(det, conf[400:], label[400:], pred[400:])
    assert det.merge(a, b) == whole == det.merge(b, a)
    wrong = (label + 2) % 6
    s = det.observe(det.empty(), make_batch(1000, pred=pred, confidence=conf))
    s = det.observe_labels(s, _labels(conf, wrong, pred))
    s = det.observe_labels(s, _labels(conf, wrong, pred, weight=-1))
    s = det.observe_labels(s, _labels(conf, label, pred))
    assert s == whole and det.loads(det.dumps(whole)) == whole


def test_calibration_map_is_monotone_and_reproduces_the_reference_accuracy():
    rng = np.random.default_rng(7)
    conf = rng.uniform(0, 1, 30_000)
    correct = rng.random(30_000) < conf ** 2  # over-confident everywhere
    m = cal.fit(conf, correct)
    assert np.all(np.diff(m["accuracy"]) >= 0) and m["n"].sum() == 30_000
    grid = cal.grid_counts(conf)
    assert cal.estimate(grid, m["cuts"], m["accuracy"]) == pytest.approx(correct.mean(), abs=0.005)
    # Raw confidence would have said 0.5; the calibrated estimate says what happened.
    assert abs(conf.mean() - correct.mean()) > 0.15


def test_label_free_estimate_compares_a_slice_with_its_own_reference(reference):
    """The weak camera's inputs are harder by construction (issue 12: a stationary
    under-confident camera warned in every window when compared with the fleet's baseline)."""
    det = Performance()
    conf, label, pred = _model(np.random.default_rng(21), 3000, shift=0.1)
    s = _state(det, conf, label, pred)
    own = det.evaluate(s, context({"performance": reference}, slice="camera=weak"))[1]
    fleet = det.evaluate(s, context({"performance": reference}))[1]
    assert own.status is Status.OK and fleet.status is Status.WARN
    assert own.details["reference_estimate"] < fleet.details["reference_estimate"]
    lo, hi = own.details["drop_interval"]
    assert lo < 0 < hi and own.details["estimate_se"] > 0


def test_every_label_batch_is_a_look_and_the_decision_holds_over_all_of_them(reference):
    """20 label batches of a stationary window: no look finds a regression, and the p-value
    does not depend on how the labels were split (the confidence sequence needs no spending)."""
    det = Performance()
    conf, label, pred = _model(np.random.default_rng(22), 4000)
    s = det.observe(det.empty(), make_batch(4000, pred=pred, confidence=conf))
    for k, rows in enumerate(np.array_split(np.arange(4000), 20)):
        s = det.observe_labels(s, _labels(conf, label, pred, rows))
        main, _ = det.evaluate(s, context({"performance": reference}, look=k))
        assert main.status in (Status.OK, Status.INSUFFICIENT_DATA), (k, main.details)
    assert main.p_value == det.evaluate(s, context({"performance": reference}))[0].p_value
