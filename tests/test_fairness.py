"""The fairness detector against Fairlearn (the test-only oracle), to 1e-9, plus its intervals,
decisions and state algebra."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equal_opportunity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score

from detectors.fairness import Fairness
from detectors.stats.proportions import katz_ratio, newcombe, two_proportion_p, wilson
from detectors.testing import context, make_batch
from monitor.contract import LabelledBatch, Status

TOL = 1e-9
CLASSES = (1, 3)


def _data(seed: int = 0, n: int = 6000):
    rng = np.random.default_rng(seed)
    group = rng.choice(np.array(["A", "B", "C"], dtype=object), n, p=[0.5, 0.3, 0.2])
    region = rng.choice(np.array(["eu", "us"], dtype=object), n)
    label = rng.integers(0, 5, n)
    skill = np.select([group == "A", group == "B"], [0.85, 0.7], 0.8)
    pred = np.where(rng.random(n) < skill, label, rng.integers(0, 5, n))
    labelled = rng.random(n) < 0.6  # selection rate uses every prediction, the rest labels
    return {"group": group, "region": region}, label, pred, labelled


def _labelled(attrs, label, pred, rows, weight=1):
    n = int(rows.sum()) if rows.dtype == bool else len(rows)
    return LabelledBatch(np.arange(n).astype(object), np.zeros(n, np.int64),
                         pred[rows].astype(np.int32), label[rows].astype(np.int64),
                         np.full(n, weight, np.int64), np.full(n, np.nan, np.float32),
                         np.zeros(n, bool), {k: v[rows] for k, v in attrs.items()})


def _state(det, attrs, label, pred, labelled):
    s = det.observe(det.empty(), make_batch(len(pred), pred=pred, attrs=attrs))
    return det.observe_labels(s, _labelled(attrs, label, pred, labelled))


@pytest.fixture(scope="module")
def audited():
    attrs, label, pred, labelled = _data()
    det = Fairness(attributes=("group", "region"), intersections=(("group", "region"),),
                   positive_classes=CLASSES, min_group_size=1)
    return det.audit(_state(det, attrs, label, pred, labelled), alpha=0.01), attrs, label, pred, \
        labelled


def _sensitive(attrs, fields, rows):
    if len(fields) == 1:
        return pd.Series(attrs[fields[0]][rows], name=fields[0])
    return pd.DataFrame({f: attrs[f][rows] for f in fields})


def _key(group: str):
    values = tuple(part.split("=", 1)[1] for part in group.split(","))
    return values[0] if len(values) == 1 else values


@pytest.mark.parametrize("fields", [("group",), ("region",), ("group", "region")])
def test_rates_and_reference_differences_equal_fairlearn_metricframe(audited, fields):
    result, attrs, label, pred, labelled = audited
    everyone = np.ones(len(pred), bool)
    frames = {"accuracy": MetricFrame(metrics=accuracy_score, y_true=label[labelled],
                                      y_pred=pred[labelled],
                                      sensitive_features=_sensitive(attrs, fields, labelled))}
    for c in CLASSES:
        frames[f"selection_rate[{c}]"] = MetricFrame(
            metrics=selection_rate, y_true=(label == c).astype(int), y_pred=(pred == c).astype(int),
            sensitive_features=_sensitive(attrs, fields, everyone))
        for name, fn in (("tpr", true_positive_rate), ("fpr", false_positive_rate)):
            frames[f"{name}[{c}]"] = MetricFrame(
                metrics=fn, y_true=(label[labelled] == c).astype(int),
                y_pred=(pred[labelled] == c).astype(int),
                sensitive_features=_sensitive(attrs, fields, labelled))
    dim = "×".join(fields)
    groups = [g for g in result.groups if g.dimension == dim]
    assert len(groups) == len(frames["accuracy"].by_group)
    checked = 0
    for g in groups:
        for metric, frame in frames.items():
            assert abs(g.rates[metric].value - frame.by_group[_key(g.group)]) <= TOL
            checked += 1
    comps = [c for c in result.comparisons if c.dimension == dim]
    assert comps
    for c in comps:
        by_group = frames[c.metric].by_group
        want = by_group[_key(c.group)] - by_group[_key(c.reference)]
        assert abs(c.difference - want) <= TOL
        assert abs(c.ratio - by_group[_key(c.group)] / by_group[_key(c.reference)]) <= TOL
    assert checked == len(groups) * len(frames)


@pytest.mark.parametrize("fields", [("group",), ("region",), ("group", "region")])
def test_disparity_summaries_equal_fairlearn_functions(audited, fields):
    result, attrs, label, pred, labelled = audited
    summary = next(s for s in result.summaries if s.dimension == "×".join(fields))
    sf_all = _sensitive(attrs, fields, np.ones(len(pred), bool))
    sf_lab = _sensitive(attrs, fields, labelled)
    y, p = label[labelled], pred[labelled]
    frame = MetricFrame(metrics=accuracy_score, y_true=y, y_pred=p, sensitive_features=sf_lab)
    assert abs(summary.gaps["accuracy_difference"] - frame.difference()) <= TOL
    assert abs(summary.gaps["accuracy_ratio"] - frame.ratio()) <= TOL
    for c in CLASSES:
        ya, pa = (label == c).astype(int), (pred == c).astype(int)
        yl, pl = (y == c).astype(int), (p == c).astype(int)
        oracle = {
            "demographic_parity_difference": demographic_parity_difference(ya, pa,
                                                                           sensitive_features=sf_all),
            "demographic_parity_ratio": demographic_parity_ratio(ya, pa, sensitive_features=sf_all),
            "equalized_odds_difference": equalized_odds_difference(yl, pl, sensitive_features=sf_lab),
            "equalized_odds_ratio": equalized_odds_ratio(yl, pl, sensitive_features=sf_lab),
            "equal_opportunity_difference": equal_opportunity_difference(
                yl, pl, sensitive_features=sf_lab),
            "equal_opportunity_ratio": equal_opportunity_ratio(yl, pl, sensitive_features=sf_lab),
        }
        for name, want in oracle.items():
            assert abs(summary.gaps[f"{name}[{c}]"] - want) <= TOL, name


def test_merge_relabel_and_retraction_give_the_same_numbers():
    attrs, label, pred, labelled = _data(seed=1, n=3000)
    det = Fairness(attributes=("group",), intersections=(("group", "region"),),
                   positive_classes=CLASSES, min_group_size=1)
    whole = _state(det, attrs, label, pred, labelled)
    half = np.arange(3000) < 1700
    a = _state(det, {k: v[half] for k, v in attrs.items()}, label[half], pred[half], labelled[half])
    b = _state(det, {k: v[~half] for k, v in attrs.items()}, label[~half], pred[~half],
               labelled[~half])
    assert det.merge(a, b) == whole and det.merge(b, a) == whole
    # A wrong first label, retracted (-1) and replaced: the last label wins.
    wrong = (label + 1) % 5
    s = det.observe(det.empty(), make_batch(3000, pred=pred, attrs=attrs))
    s = det.observe_labels(s, _labelled(attrs, wrong, pred, labelled))
    s = det.observe_labels(s, _labelled(attrs, wrong, pred, labelled, weight=-1))
    s = det.observe_labels(s, _labelled(attrs, label, pred, labelled))
    assert s == whole
    assert det.loads(det.dumps(whole)) == whole


def test_a_real_gap_alerts_with_an_interval_excluding_zero_and_equal_groups_do_not():
    rng = np.random.default_rng(5)
    n = 4000
    group = rng.choice(np.array(["A", "B"], dtype=object), n, p=[0.7, 0.3])
    label = rng.integers(0, 10, n)
    for skill_b, expect in ((0.80, Status.ALERT), (0.94, Status.OK)):
        pred = np.where(rng.random(n) < np.where(group == "B", skill_b, 0.94), label,
                        (label + 1) % 10)
        det = Fairness(attributes=("group",), positive_classes=(3,))
        s = _state(det, {"group": group}, label, pred, np.ones(n, bool))
        main, b = det.evaluate(s, context(None))
        assert b.subject == "group=B" and b.status is expect
        acc = next(c for c in b.details["comparisons"] if c["metric"] == "accuracy")
        if expect is Status.ALERT:
            assert acc["difference_ci"][1] < 0 and acc["significant"] and acc["violation"]
            assert main.status is Status.ALERT and main.details["groups_alerting"] == ["group=B"]
        else:
            assert acc["difference_ci"][0] < 0 < acc["difference_ci"][1]


def test_small_groups_are_insufficient_and_unconfigured_detector_says_so():
    det = Fairness(attributes=("group",), min_group_size=30)
    attrs = {"group": np.array(["A"] * 50 + ["B"] * 5, dtype=object)}
    pred = np.zeros(55, np.int32)
    s = _state(det, attrs, pred.astype(np.int64), pred, np.ones(55, bool))
    found = {f.subject: f.status for f in det.evaluate(s, context(None))}
    assert found == {"": Status.OK, "group=B": Status.INSUFFICIENT_DATA}
    (only,) = Fairness().evaluate(Fairness().empty(), context(None))
    assert only.status is Status.INSUFFICIENT_DATA and "fairness.attributes" in only.details["reason"]


def test_reference_group_is_configured_or_the_largest():
    attrs, label, pred, labelled = _data(seed=2, n=2000)
    for refs, want in (({}, "group=A"), ({"group": "C"}, "group=C"),
                       ({"group": "group=B"}, "group=B"), ({"group": "nobody"}, "group=A")):
        det = Fairness(attributes=("group",), reference_groups=refs, min_group_size=1)
        (summary,) = det.audit(_state(det, attrs, label, pred, labelled), 0.01).summaries
        assert summary.reference == want


def test_intervals_match_published_values():
    # Wilson: Newcombe (1998) table I example; Newcombe hybrid and Katz log values as computed
    # by statsmodels 0.15 (confint_proportions_2indep, methods "newcomb" and "log").
    lo, hi = wilson(81, 263)
    assert (round(float(lo), 4), round(float(hi), 4)) == (0.2553, 0.3662)
    lo, hi = newcombe(56, 70, 48, 80)
    assert abs(lo - 0.05243147240236498) < 1e-12 and abs(hi - 0.33387265403690614) < 1e-12
    lo, hi = katz_ratio(30, 100, 45, 100)
    assert abs(lo - 0.4606856014022563) < 1e-9 and abs(hi - 0.9647456814183548) < 1e-9
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # empty groups give NaN, not warnings or exceptions
        assert np.isnan(two_proportion_p(0, 0, 5, 10)) and np.isnan(wilson(0, 0)[0])
    assert np.isfinite(katz_ratio(0, 20, 5, 20)).all()  # zero cell: Haldane correction
