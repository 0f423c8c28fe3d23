"""Wiring only: settings -> database, broker clients, detectors, checkpointer, consumer."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from monitor.alerting import wiring
from monitor.app.config import Settings
from monitor.core import kafka, retention
from monitor.core.checkpoint import AfterCommitHook, Checkpointer, CheckpointHook, ReferenceLookup
from monitor.core.consumer import Consumer
from monitor.core.ingest.intake import Intake
from monitor.core.metrics import Metrics
from monitor.core.registry import load_detectors
from monitor.core.slice_admission import TopKAdmission
from monitor.core.windows import WindowAssigner
from monitor.errors import ConfigError
from monitor.store import migrate
from monitor.store.db import check_reachable, make_engine, mask_url, with_retry
from monitor.store.references import CachedReferenceLookup
from slices import dimensions

log = logging.getLogger(__name__)


@dataclass
class Service:
    consumer: Consumer
    engine: Engine
    metrics: Metrics


def topic_partitions(settings: Settings) -> list[tuple[str, int]]:
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
                                settings.detectors.alpha, sl.min_samples, dims, references,
                                all_hooks, intake=intake,
                                evaluate_budget_s=settings.checkpoint.evaluate_budget_s)
    tps = topic_partitions(settings)
    k = settings.kafka
    source = kafka.make_source(k.client, k.bootstrap)
    sink = kafka.make_sink(k.client, k.bootstrap)
    consumer = Consumer(k, settings.database, settings.checkpoint, engine, source, sink,
                        checkpointer, metrics, tps,
                        after_commit=[h for h in all_hooks if isinstance(h, AfterCommitHook)]
                        + retention.hooks(engine, settings.retention,
                                          settings.windows.allowed_lateness_s * 1000))
    log.info("monitor ready database=%s kafka=%s client=%s", mask_url(url), k.bootstrap, k.client)
    return Service(consumer, engine, metrics)


#: SIGTERM -> process gone, at most (the brief: honoured within 10 s at any backlog).
STOP_DEADLINE_S = 9.0


def run(settings: Settings, exit_when_idle_s: float | None = None) -> None:
    service = build(settings)
    service.metrics.serve(settings.metrics.host, settings.metrics.port)
    sender = wiring.start_sender(settings.alertmanager, service.engine, service.metrics)

    signalled: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping signal=%d", signum)
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
