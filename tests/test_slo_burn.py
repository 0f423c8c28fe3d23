"""SLO maths and settings: exact numbers, no I/O."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.alerting.slo.burn import (
    Tier,
    burn_rate,
    detection_time_s,
    error_budget_remaining,
    judge,
    rolling_sums,
    to_finding,
)
from monitor.alerting.slo.spec import BurnRatePolicy, BurnRateTier, SloSpec, min_events_for
from monitor.app.config import load_settings
from monitor.contract import Severity, Status
from monitor.errors import ConfigError

PAGE_1H = Tier("page-1h", "page", 14.4, 3600, 300)
PAGE_6H = Tier("page-6h", "page", 6.0, 21600, 1800)
TICKET_3D = Tier("ticket-3d", "ticket", 1.0, 259200, 21600)
TIERS = (PAGE_1H, PAGE_6H, TICKET_3D)


def _write(tmp_path, text: str):
    p = tmp_path / "vitmon.yaml"
    p.write_text(text)
    return p


def test_default_tiers_are_the_workbook_burn_rates_derived_from_budget_shares():
    policy = BurnRatePolicy()
    assert [(t.name, t.severity, t.long_window, t.short_window) for t in policy.tiers] == [
        ("page-1h", "page", 3600, 300), ("page-6h", "page", 21600, 1800),
        ("ticket-3d", "ticket", 259200, 21600)]
    assert [t.burn_rate(30) for t in policy.tiers] == [14.4, 6.0, 1.0]
    # a 28-day period keeps the budget shares, so the thresholds move
    assert [round(t.burn_rate(28), 4) for t in policy.tiers] == [13.44, 5.6, 0.9333]
    assert policy.min_events == 100 and policy.min_bad_events == 10
    # scaled to the objective: 2 bad events in 100 no longer page a 99.9 % SLO
    strict = SloSpec(name="s", model="m", sli="availability", objective=0.999)
    assert min_events_for(strict, policy) == 10_000
    assert judge([Tier("page-1h", "page", 14.4, 3600, 300)], {3600: (98, 100), 300: (98, 100)},
                 (98, 100), 0.999, min_events_for(strict, policy)).severity.value == "none"


def test_burn_rate_and_budget_exact_numbers():
    assert burn_rate(8_560, 10_000, 0.99) == pytest.approx(14.4)  # 14.4 % errors, 1 % budget
    assert burn_rate(9_856, 10_000, 0.99) == pytest.approx(1.44)
    assert burn_rate(995, 1000, 0.995) == pytest.approx(1.0)
    assert math.isnan(burn_rate(0, 0, 0.99))
    assert error_budget_remaining(0, 0, 0.99) == 1.0
    assert error_budget_remaining(99_700, 100_000, 0.995) == pytest.approx(0.4)
    assert error_budget_remaining(98_000, 100_000, 0.99) == pytest.approx(-1.0)


def test_detection_time_is_the_workbook_formula():
    # Workbook: 100 % errors, 99.9 % SLO, 1 h window, 14.4x -> 0.0144 h = 51.84 s
    assert detection_time_s(3600, 14.4, 0.999, 1.0) == pytest.approx(51.84)
    # 32 % bad against a 99 % latency SLO: 1 h x 0.144 / 0.32 = 27 min
    assert detection_time_s(3600, 14.4, 0.99, 0.32) == pytest.approx(1620)
    # a baseline error ratio shortens it: (0.144 - 0.004) / (0.32 - 0.004) of an hour
    assert detection_time_s(3600, 14.4, 0.99, 0.32, 0.004) == pytest.approx(3600 * 0.14 / 0.316)
    assert detection_time_s(3600, 14.4, 0.99, 0.1) == math.inf  # never reaches 14.4x


def test_rolling_sums_are_exact_over_irregular_buckets():
    starts = np.array([0, 60_000, 180_000, 240_000], dtype=np.int64)
    values = np.array([1, 10, 100, 1000])
    ends = np.array([60_000, 240_000, 300_000, 600_000])
    assert rolling_sums(starts, values, ends, 180_000).tolist() == [1, 110, 1100, 0]
    assert rolling_sums(starts, values, ends, 10**9).tolist() == [1, 111, 1111, 1111]


def test_judge_needs_both_windows_and_the_minimum_events():
    ok_counts = {3600: (9_000, 10_000), 300: (800, 1_000), 21600: (60_000, 60_000),
                 1800: (6_000, 6_000), 259200: (10**6, 10**6), 21600 * 1: (60_000, 60_000)}
    v = judge(TIERS, ok_counts, (10**6, 10**6), 0.99, 100)
    page = v.tiers[0]
    assert (page.burn_long, page.burn_short, page.firing) == (10.0, 20.0, False)  # long < 14.4
    counts = {**ok_counts, 3600: (8_500, 10_000)}
    v = judge(TIERS, counts, (10**6, 10**6), 0.99, 100)
    assert v.tiers[0].firing and v.severity is Severity.PAGE
    few = {w: (0, 50) for w in ok_counts}  # 100 % bad, but only 50 events
    v = judge(TIERS, few, (0, 50), 0.99, 100)
    assert not any(t.firing for t in v.tiers) and not any(t.judged for t in v.tiers)


def test_slow_burn_is_a_ticket_and_the_finding_carries_burn_and_budget():
    counts = {3600: (9_970, 10_000), 300: (997, 1_000), 21600: (59_600, 60_000),
              1800: (5_982, 6_000), 259200: (716_000, 720_000)}
    v = judge(TIERS, counts, (716_000, 720_000), 0.995, 100)
    assert [t.firing for t in v.tiers] == [False, False, True]
    f = to_finding("availability", "availability", 0.995, 30, v)
    assert (f.status, f.severity, f.subject, f.detector) == (
        Status.ALERT, Severity.TICKET, "availability", "slo_burn_rate")
    # score: the smaller burn rate of the firing tier (3d: 4000/720000/0.005 = 1.111...)
    assert f.threshold == 1.0 and f.score == pytest.approx(4000 / 720_000 / 0.005)
    assert f.details["burn_rates"]["6h"] == pytest.approx(400 / 60_000 / 0.005)
    assert f.details["error_budget_remaining"] == pytest.approx(1 - 4000 / 720_000 / 0.005)
    assert f.details["firing_tiers"] == ["ticket-3d"]


def test_a_tier_that_can_never_fire_is_refused_at_start_naming_the_setting(tmp_path):
    cfg = _write(tmp_path, "slos:\n  - {name: acc, model: m, sli: accuracy, objective: 0.9}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    assert err.value.setting == "burn_rate.tiers[0]"
    assert "14.4 x (1 - 0.9) = 1.44 >= 1" in str(err.value)
    own = _write(tmp_path, (
        "slos:\n  - name: acc\n    model: m\n    sli: accuracy\n    objective: 0.9\n"
        "    period_days: 7\n    tiers: [{name: t, severity: ticket, budget_share: 0.5, "
        "long_window: 1d, short_window: 2h}]\n"))
    s = load_settings(own, env={})
    assert s.slos[0].tiers[0].burn_rate(7) == 3.5  # 3.5 x 0.1 = 0.35 < 1: can fire
    bad = _write(tmp_path, (
        "slos:\n  - name: acc\n    model: m\n    sli: accuracy\n    objective: 0.9\n"
        "    period_days: 7\n    tiers: [{name: t, severity: ticket, budget_share: 0.5, "
        "long_window: 1h, short_window: 5m}]\n"))
    with pytest.raises(ConfigError) as err:
        load_settings(bad, env={})
    assert err.value.setting == "slos[0].tiers[0]"


def test_the_tier_check_uses_each_slos_own_period(tmp_path):
    # 14.4 x (1 - 0.95) = 0.72 < 1 with 30 days; with 90 days b = 43.2 and 43.2 x 0.05 >= 1
    cfg = _write(tmp_path, "slos:\n  - {name: a, model: m, sli: availability, objective: 0.95, "
                           "period_days: 90}\n")
    with pytest.raises(ConfigError, match="43.2"):
        load_settings(cfg, env={})


@pytest.mark.parametrize("text, setting", [
    ("slos:\n  - {name: l, model: m, sli: latency, objective: 0.99}\n", "slos"),
    ("slos:\n  - {name: l, model: m, sli: availability, objective: 1.0}\n", "slos.objective"),
    ("slos:\n  - {name: a, model: m, sli: availability, objective: 0.99}\n"
     "  - {name: a, model: m, sli: availability, objective: 0.9}\n", "slos[1].name"),
    ("slos:\n  - {name: a, model: m, sli: availability, objective: 0.99, slice: region}\n",
     "slos.slice"),
    ("burn_rate:\n  tiers: [{name: t, severity: page, budget_share: 0.02, long_window: 5m, "
     "short_window: 1h}]\n", "burn_rate.tiers"),
])
def test_bad_slo_settings_fail_with_one_line_naming_the_setting(tmp_path, text, setting):
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, text), env={})
    assert err.value.setting == setting
    assert "\n" not in str(err.value)


def test_tier_windows_must_be_whole_minutes():
    with pytest.raises(ValueError, match="whole minutes"):
        BurnRateTier(name="t", severity="page", budget_share=0.1, long_window="90s",
                     short_window="30s")


def test_hook_counts_good_and_total_per_minute_and_forgets_an_aborted_attempt():
    from monitor.alerting.slo.hook import SloHook
    from monitor.alerting.slo.spec import SloSpec
    from monitor.testing import synthetic_batch

    specs = (SloSpec(name="lat", model="m", sli="latency", threshold_ms=25, objective=0.99),
             SloSpec(name="avail-c1", model="m", sli="availability", objective=0.99,
                     slice="camera_id=c1"),
             SloSpec(name="acc", model="m", sli="accuracy", objective=0.5, period_days=1,
                     tiers=(BurnRateTier(name="t", severity="ticket", budget_share=0.5,
                                         long_window="1h", short_window="5m"),)))
    hook = SloHook(specs, BurnRatePolicy())
    batch = synthetic_batch(n=500, seed=3, error_rate=0.1)
    first, second = object(), object()  # two checkpoint attempts (connections)
    hook.on_predictions(first, batch)
    hook.on_predictions(second, batch)  # the retry: the first attempt's deltas are dropped
    minute = batch.ts_ms // 60_000 * 60_000
    lat = {b: [int((batch.latency_ms[minute == b] <= 25).sum()), int((minute == b).sum())]
           for b in np.unique(minute).tolist()}
    assert {b: v for (s, b), v in hook._deltas.items() if s == "lat"} == lat
    c1 = batch.attrs["camera_id"] == "c1"
    got = {b: v for (s, b), v in hook._deltas.items() if s == "avail-c1"}
    assert sum(t for _, t in got.values()) == int(c1.sum())
    assert sum(g for g, _ in got.values()) == int((c1 & ~batch.is_error).sum())
    assert not any(s == "acc" for s, _ in hook._deltas)  # accuracy comes from labels only
    row = {"model": "m", "ts_ms": 120_500, "attrs": {}, "is_error": False, "pred": 3}
    hook.on_labels(second, [{**row, "label": 3, "weight": 1},  # a first label, right
                            {**row, "label": 3, "weight": -1},  # replaced ...
                            {**row, "label": 5, "weight": 1},  # ... by a wrong one
                            {**row, "label": 1, "weight": 1, "is_error": True, "pred": -1}])
    assert hook._deltas[("acc", 120_000)] == [0, 1]  # last label wins: 0 good of 1

