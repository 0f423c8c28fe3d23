"""The ``infra`` detector: infra signals kept per window, the out-of-memory page rule and its
false-alarm behaviour, and the metrics it feeds.

* units: a steady 0.1 % error rate (every error an OOM) over 2,000 windows raises no OOM alert
  (its guarantee is <= alpha per window over all looks); a 10 % OOM burst alerts as a page;
* end to end: scripted traffic -> real broker -> `vitmon run` -> a real Alertmanager: the
  ``OutOfMemorySpike`` page fires on the burst, never in the steady hour before it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from prometheus_client import CollectorRegistry

from detectors.infra import InfraSignals
from monitor.contract import EvalContext, StateKey, Status
from monitor.core.ingest.events import encode_prediction
from monitor.core.metrics import Metrics
from monitor.testing import make_context, synthetic_batch
from tests.alerting_support import alerts_json, wait_for, write_config
from tests.support import make_topics, monitor_env, produce, start_monitor

CLIENT = "confluent-kafka"
T0 = 1_793_491_200_000  # 2026-11-01T00:00:00Z
MIN = 60_000
MODEL, VERSION = "vit-tiny-digits", "2026.11.1"


def _with_codes(n: int, seed: int, oom_every: int | None) -> object:
    b = synthetic_batch(n=n, seed=seed)
    err = np.zeros(n, bool) if oom_every is None else np.arange(n) % oom_every == 0
    codes = np.where(err, "CUDA_OOM", None).astype(object)
    return replace(b, is_error=err, extras={**b.extras, "error_code": codes})


def test_steady_oom_errors_at_0_1_percent_never_alert_over_all_looks():
    det = InfraSignals()
    rng = np.random.default_rng(0)
    alerts = 0
    for w in range(2000):  # windows of 1,000 events, each error an OOM, 0.1 % of events
        k = int(rng.binomial(1000, 0.001))
        s = replace(det.empty(), n=1000, n_error=k, n_oom=k, codes={"CUDA_OOM": k} if k else {})
        for look in range(3):  # late events re-evaluate a window
            ctx = EvalContext(StateKey("m", "1", "all", w, w + 1), None, 0.01, 17, 30, look)
            alerts += det.evaluate(s, ctx)[1].status is Status.ALERT
    assert alerts == 0


def test_an_oom_burst_pages_and_the_figures_are_kept():
    det = InfraSignals()
    burst = det.observe(det.empty(), _with_codes(1000, 1, oom_every=10))
    main, oom = det.evaluate(burst, make_context(n_tests=17))
    assert (oom.status, oom.severity.value, oom.subject) == (Status.ALERT, "page", "oom")
    assert oom.details["lower_bound"] > det.oom_max_rate  # a confidence bound clears the threshold
    figures = main.details["infra"]
    assert figures["errors_by_code"] == {"CUDA_OOM": 100} and figures["oom"] == 100
    assert 1800 <= figures["gpu_mem_mb"]["p50"] <= 2200
    assert 0.2 <= figures["gpu_util"]["p50"] <= 0.6
    # a code the configuration does not call OOM is counted, never paged on
    other = InfraSignals(oom_codes=("OOM",))
    assert other.evaluate(other.observe(other.empty(), _with_codes(1000, 1, 10)),
                          make_context())[1].status is Status.OK


def test_error_codes_are_capped_associatively():
    det = InfraSignals(max_codes=2)
    parts = []
    for seed, code in enumerate(["C", "A", "B", "D"]):
        b = _with_codes(40, seed, oom_every=4)
        parts.append(det.observe(det.empty(), replace(b, extras={
            **b.extras, "error_code": np.where(b.is_error, code, None).astype(object)})))
    left = det.merge(det.merge(parts[0], parts[1]), det.merge(parts[2], parts[3]))
    right = det.merge(parts[3], det.merge(parts[2], det.merge(parts[1], parts[0])))
    assert left == right and dict(left.codes) == {"A": 10, "B": 10, "other": 20}


def test_infra_figures_become_metrics():
    det = InfraSignals()
    main = det.evaluate(det.observe(det.empty(), _with_codes(500, 2, oom_every=50)),
                        make_context())[0]
    m = Metrics(CollectorRegistry())
    m.record_findings([(StateKey(MODEL, VERSION, "all", 0, 1), main)])
    get = m.registry.get_sample_value
    lab = {"model": MODEL, "model_version": VERSION, "slice": "all"}
    assert get("vitmon_inference_error_ratio", {**lab, "code": "CUDA_OOM"}) == 10 / 500
    mem = get("vitmon_gpu_memory_bytes", {**lab, "quantile": "0.95"})
    assert 1800 * 2**20 <= mem <= 2300 * 2**20
    assert get("vitmon_cold_start_ratio", lab) == main.details["infra"]["cold_start_rate"]


def _stream(start_min: int, minutes: int, per_minute: int, oom_share: float) -> list:
    """Events evenly spaced in event time with GPU telemetry; the first round(per_minute x
    oom_share) of each minute fail with CUDA_OOM (a share of 0.001 is spread over the minutes)."""
    out, owed = [], 0.0
    for m in range(start_min, start_min + minutes):
        owed += per_minute * oom_share
        n_bad, owed = int(owed), owed - int(owed)
        for i in range(per_minute):
            ev = {"event_id": f"infra-{m}-{i}", "ts": T0 + m * MIN + i * MIN // per_minute,
                  "model": MODEL, "model_version": VERSION, "latency_ms": 20.0 + i % 7,
                  "gpu_mem_mb": 2000.0 + i % 5, "gpu_util": 0.4, "batch_size": 4,
                  "cold_start": i == 0}
            if i < n_bad:
                ev.update(status="error", error_code="CUDA_OOM")
            else:
                ev.update(status="ok", pred=i % 10, confidence=0.9)
            out.append((None, encode_prediction(ev)))
    return out


def test_oom_burst_pages_alertmanager_and_steady_errors_do_not(broker, db_url_factory,
                                                               topic_names, tmp_path,
                                                               alertmanager):
    # a firing alert is sent with endsAt 4 resend intervals ahead: long enough to be seen after
    # the monitor exits
    config = write_config(tmp_path / "vitmon.yaml", alertmanager={
        "resend_interval_s": 30, "retry_initial_s": 0.5, "retry_max_s": 2, "poll_s": 0.2})
    db_url = db_url_factory()
    topics = make_topics(topic_names, CLIENT, broker.bootstrap)
    env = monitor_env(broker.bootstrap, db_url, topics, CLIENT, VITMON_CONFIG=str(config),
                      VITMON_ALERTMANAGER_URL=alertmanager.url, VITMON_DETECTORS="infra",
                      VITMON_SLICES__ATTRIBUTES="[]")
    steady = _stream(0, 60, 200, 0.001)  # an hour at 0.1 % errors, every one an OOM
    burst = _stream(60, 10, 200, 0.10)  # then 10 minutes where one event in ten runs out
    log = tmp_path / "monitor.log"

    def consume() -> None:  # until idle: the final flush evaluates every window read
        assert start_monitor(env, "--exit-when-idle", "3", log=log).wait(300) == 0, \
            log.read_text()[-3000:]

    def oom_in_alertmanager() -> list:
        return [a for a in alertmanager.alerts() if a["labels"]["alertname"] == "OutOfMemorySpike"]

    produce(CLIENT, broker.bootstrap, topics.predictions, steady + burst)
    consume()
    got = wait_for(oom_in_alertmanager, 30, f"the OOM page in Alertmanager; vitmon has "
                   f"{[(a['alertname'], a['state'], a['delivery']) for a in alerts_json(env)]}")
    # quiet again: the alert resolves by itself, and Alertmanager is told
    produce(CLIENT, broker.bootstrap, topics.predictions, _stream(70, 10, 200, 0.001))
    consume()
    wait_for(lambda: not oom_in_alertmanager(), 60, "the OOM page to resolve in Alertmanager")
    labels = got[0]["labels"]
    assert (labels["severity"], labels["detector"], labels["subject"], labels["model_version"]) \
        == ("page", "infra", "oom", VERSION)
    history = [a for a in alerts_json(env) if a["alertname"] == "OutOfMemorySpike"]
    assert len(history) == 1, history  # one burst, one alert; the steady hour raised none
    (fired, resolved), = [history[0]["transitions"]]
    assert (fired["to"], resolved["to"]) == ("firing", "resolved")
    assert T0 + 60 * MIN <= fired["window_start_ms"] < T0 + 70 * MIN, fired
    assert history[0]["delivery"]["last_sent_state"] == "resolved"
