"""Wiring only: settings -> database, broker clients, detectors, checkpointer, consumer."""

from __future__ import annotations

import faulthandler
import gc
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from monitor.alerting import wiring
from monitor.app.config import Settings
from monitor.core import kafka, retention
from monitor.core.checkpoint import AfterCommitHook, Checkpointer, CheckpointHook
from monitor.core.checkpoint_references import ReferenceLookup
from monitor.core.consumer import Consumer
from monitor.core.health import Health, serve_http
from monitor.core.ingest.intake import Intake
from monitor.core.metrics import Metrics
from monitor.core.registry import load_detectors
from monitor.core.slice_admission import TopKAdmission
from monitor.core.windows import WindowAssigner
from monitor.errors import ConfigError
from monitor.store import migrate
from monitor.store.db import check_database, check_reachable, make_engine, mask_url, with_retry
from monitor.store.references import CachedReferenceLookup
from slices import dimensions

log = logging.getLogger(__name__)


@dataclass
class Service:
    consumer: Consumer
    engine: Engine
    metrics: Metrics
    health: Health


def topic_partitions(settings: Settings) -> list[tuple[str, int]]:
    """Create the topics if missing; the partitions to read: every partition of the topics
    (from metadata) under a group, else those of ``kafka.partitions`` that exist."""
    k = settings.kafka
    topics = {k.predictions_topic: 3, k.labels_topic: 3, k.dlq_topic: 1}
    try:
        kafka.create_topics(k.client, k.bootstrap, topics)
        tps = []
        for topic in (k.predictions_topic, k.labels_topic):
            parts = kafka.partitions_for(k.client, k.bootstrap, topic)
            tps += [(topic, p) for p in parts if k.partitions is None or p in k.partitions]
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError("kafka.bootstrap (VITMON_KAFKA_BOOTSTRAP)",
                          f"cannot reach a Kafka broker at {k.bootstrap}: {exc}") from None
    if not tps:
        raise ConfigError("kafka.partitions", f"none of {k.partitions} exist on the topics")
    return tps


def load_intake(engine: Engine, intake: Intake) -> None:
    with engine.connect() as conn:
        intake.load(conn)


def build(settings: Settings, references: ReferenceLookup | None = None,
          metrics: Metrics | None = None, hooks: Sequence[CheckpointHook] = ()) -> Service:
    url = settings.required_database_url()
    check_reachable(url)
    detectors = load_detectors(settings.detectors.enabled, settings.detector_params())
    migrate.upgrade(url)
    engine = make_engine(url)
    dims = {name: m.embedding_dim for name, m in settings.models.items() if m.embedding_dim}
    sl = settings.slices
    slice_dims = dimensions(sl.attributes, sl.crosses, sl.buckets)
    admission = TopKAdmission([f for d in slice_dims if d.kind != "bucket" for f in d.fields],
                              sl.max_values, sl.min_volume, settings.windows.size_s * 1000,
                              sl.allow)
    intake = Intake(settings.intake, dims, admission)
    with_retry(lambda: load_intake(engine, intake), initial_s=0.5, max_s=10, what="load intake")
    assigner = WindowAssigner(detectors, slice_dims, admission, settings.windows.size_s * 1000,
                              settings.detectors.slice_dimensions)
    baselines = {name: m.baseline_version for name, m in settings.models.items()}
    if references is None:
        references = CachedReferenceLookup(baselines)
    metrics = metrics or Metrics()
    alerting = wiring.wire(  # SLO and comparison hooks first (they add findings), alerts last
        detectors, metrics, alerts=settings.alerts, slos=settings.slos,
        burn_rate=settings.burn_rate, baselines=baselines, alpha=settings.detectors.alpha,
        min_samples=sl.min_samples, window_size_ms=settings.windows.size_s * 1000,
        ui_base_url=settings.ui.base_url)
    all_hooks = [*alerting.first, *hooks, *alerting.last]
    checkpointer = Checkpointer(assigner, settings.windows.allowed_lateness_s * 1000,
                                settings.detectors.alpha, sl.min_samples, references,
                                all_hooks, intake=intake,
                                evaluate_budget_s=settings.checkpoint.evaluate_budget_s,
                                warm_up_events=sl.warm_up_events,
                                labels_topic=settings.kafka.labels_topic,
                                label_settle_ms=settings.windows.label_settle_s * 1000,
                                evaluate_workers=settings.checkpoint.evaluate_workers)
    tps = topic_partitions(settings)
    k = settings.kafka
    group = kafka.Group(k.group, k.session_timeout_s, k.heartbeat_interval_s,
                        k.max_poll_interval_s) if k.use_group else None
    source = kafka.make_source(k.client, k.bootstrap, group=group)
    sink = kafka.make_sink(k.client, k.bootstrap)
    # liveness: a poll loop silent longer than the group allows (or than a database retry
    # waits) is stuck; readiness: the broker answered within a few lag refreshes
    probes = Health(stall_s=max(k.max_poll_interval_s, 3 * settings.database.retry_max_s, 30.0),
                    broker_stale_s=30.0, db_check=lambda: check_database(url, timeout_s=2))
    consumer = Consumer(k, settings.database, settings.checkpoint, engine, source, sink,
                        checkpointer, metrics, tps,
                        after_commit=[h for h in all_hooks if isinstance(h, AfterCommitHook)]
                        + retention.hooks(engine, settings.retention,
                                          settings.windows.allowed_lateness_s * 1000,
                                          labels_topic=k.labels_topic),
                        health=probes)
    log.info("monitor ready database=%s kafka=%s client=%s mode=%s", mask_url(url), k.bootstrap,
             k.client, f"group={k.group}" if k.use_group else "static partitions")
    return Service(consumer, engine, metrics, probes)


#: SIGTERM -> process gone, at most (the brief: honoured within 10 s at any backlog).
STOP_DEADLINE_S = 9.0


#: The cyclic collector's thresholds while consuming (CPython's default: 700, 10, 10).
GC_THRESHOLDS = (20_000, 20, 100)


def tune_collector() -> None:
    """Freeze what start-up built and collect the young generation less often.

    The consume loop allocates millions of short-lived containers (records, rows, per-slice
    dicts) beside ~10^6 long-lived objects (modules, detectors, the reference profile). With
    the default thresholds the collector ran ~1,100 times per 200k events in bench/ingest.py,
    and each older-generation pass re-scanned that heap: 2.0 CPU s in the collector, and
    ``vitmon run`` took 22.5 CPU s; frozen and at these thresholds, 37 collections, 0.5 s, and
    17.5 CPU s (the loop makes few cycles: what it drops is freed by reference counting).
    """
    gc.freeze()  # start-up's objects go to the permanent generation, out of every scan
    gc.set_threshold(*GC_THRESHOLDS)


def run(settings: Settings, exit_when_idle_s: float | None = None) -> None:
    service = build(settings)
    tune_collector()
    if settings.metrics.port:  # /metrics, /healthz, /readyz
        serve_http(settings.metrics.host, settings.metrics.port, service.metrics.registry,
                   service.health)
    sender = wiring.start_sender(settings.alertmanager, service.engine, service.metrics)

    signalled: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping signal=%d", signum)
        if signalled:  # a second signal must not push the deadline of the first back
            return
        signalled.append(signum)
        service.consumer.stop()
        # Last resort if a step does not reach its abandon check (e.g. one long statement):
        # faulthandler's C thread (it needs no GIL) prints every thread's stack and exits 1;
        # the uncommitted transaction rolls back with the connection (exactly-once holds).
        faulthandler.dump_traceback_later(STOP_DEADLINE_S, exit=True)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        service.consumer.run(exit_when_idle_s=exit_when_idle_s)
    finally:
        if sender is not None:
            sender.stop()
        service.consumer.source.close()
        service.consumer.sink.close()
        service.engine.dispose()
        log.info("stopped")
    if signalled:
        # Stopped by a signal: everything is closed and committed or rolled back; skip the
        # interpreter's teardown of a large heap (it took 14 s once under load).
        logging.shutdown()
        os._exit(0)
