"""The checkpoint: one numbered procedure in ONE PostgreSQL transaction.

1. Read this consumer's offset rows; refuse (:class:`~monitor.errors.Fenced`) if another
   process claimed a partition since this one did (its epoch moved on), and refuse if a stored
   offset differs from where this checkpoint's records started (offsets would go back). Step 7
   checks again under a row lock: the lock is held only at the end of the transaction, so a
   process paused mid-checkpoint ("zombie") never blocks another's claim of its partitions.
   Then the intake (:mod:`monitor.core.ingest.intake`): caps on models and versions, the
   embedding dimension of the parked events' versions (settling or keeping them parked), and
   the slice values admitted in the batches' windows.
2. Store rejected events (original bytes + reason); a replay after a crash inserts nothing twice.
3. Insert the accepted predictions; the primary key on ``event_id`` drops duplicates, and only
   the rows actually inserted go on (a duplicate ``event_id`` is counted once, across restarts).
4. Observe the new rows into per-(detector, model, version, slice, window) deltas and merge
   them into the stored window states (insert new keys, lock and merge existing ones). A
   ``ReferenceObserver`` observes against its version's active reference, looked up once per
   checkpoint (:class:`CheckpointReferences`) and the same one step 6 evaluates against.
5. Join labels with predictions, whichever came first: store labels (the last one wins) and
   fold each (prediction, label) change into the prediction's own window and slices (+1 for a
   new label, -1/+1 for a replaced one) for detectors that observe labels.
6. Evaluate windows the watermark has closed and that changed since their last evaluation;
   then the hooks (SLO burn rates, version comparisons, the alert engine) add their findings
   and alert state.
7. Persist learnt catalog entries and the slice-value sketches; lock the offset rows, check
   them as in step 1 (compare-and-set), and store the new offsets.
8. Commit. Only the caller, after this returns, updates metrics and sends alerts.

This module orchestrates; every statement it runs is a function of :mod:`monitor.store`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import orjson
from sqlalchemy import Connection

from monitor.contract import Batch, Detector, EvalContext, Finding, LabelledBatch, LabelObserver, Reference
from monitor.core.ingest.intake import Intake
from monitor.core.windows import SLICE_SEPARATOR, Deltas, WindowAssigner, state_key, window_start
from monitor.errors import Fenced, OffsetRegression
from monitor.store import catalog, ingest_counts, labels, offsets, predictions, rejected, window_states
from monitor.store.findings import revisions as finding_revisions
from monitor.store.findings import upsert_findings
from monitor.store.keys import TopicPartition, WindowKey

log = logging.getLogger(__name__)


@dataclass
class CheckpointInput:
    group: str
    start: dict[TopicPartition, int]  # offset the records of this checkpoint started at
    next: dict[TopicPartition, int]  # offset after the last record read
    max_ts: dict[TopicPartition, int]  # highest event time seen per partition
    high_watermarks: dict[TopicPartition, int]
    batches: Sequence[Batch] = ()
    labels: Sequence[Any] = ()  # monitor.core.ingest.decode.LabelDecode
    rejected: Sequence[Any] = ()  # monitor.core.ingest.decode.Rejection
    evaluate_all: bool = False  # flush: evaluate every changed window, closed or not
    parked: Sequence[Any] = ()  # monitor.core.ingest.decode.Parked, for the intake
    epochs: dict[TopicPartition, int] = field(default_factory=dict)  # claims held (fencing)


@dataclass
class CheckpointResult:
    accepted: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, version) -> new
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count
    labels: int = 0
    labels_joined: int = 0  # net (prediction, label) pairs joined by this checkpoint
    findings: list[tuple[WindowKey, Finding]] = field(default_factory=list)
    watermark_ms: int = 0
    dead_letters: list[Any] = field(default_factory=list)  # rejected in here: DLQ before commit


class ReferenceLookup(Protocol):
    """The active reference of a (model, version), as the service looks it up (cached)."""

    def __call__(self, conn: Connection, model: str, version: str) -> Reference | None: ...

    def tick(self) -> None:
        """Called at the start of every checkpoint: lets cached entries expire."""


class CheckpointHook(Protocol):
    """Extra work inside the checkpoint transaction (e.g. SLO good/total buckets, alerts)."""

    def on_predictions(self, conn: Connection, batch: Batch) -> None: ...
    def before_commit(self, conn: Connection, result: CheckpointResult) -> None: ...


@runtime_checkable
class LabelHook(Protocol):
    """A hook that also wants the label-join changes of step 5: dicts with the prediction's
    columns plus ``label`` and ``weight`` (+1 a new label, -1 a replaced one), e.g. for accuracy
    SLOs."""

    def on_labels(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None: ...


@runtime_checkable
class AfterCommitHook(Protocol):
    """A hook with work for after the commit (metrics): the consumer calls it once committed."""

    def after_commit(self, result: CheckpointResult) -> None: ...


class CheckpointReferences:
    """The active reference of each (model, version) for one checkpoint attempt: looked up once
    through the service's cached lookup, and the same for observing (a
    :class:`~monitor.contract.ReferenceObserver`) and for evaluating."""

    def __init__(self, lookup: ReferenceLookup | None, conn: Connection | None) -> None:
        self.lookup, self.conn = lookup, conn
        self._seen: dict[tuple[str, str], Reference | None] = {}

    def __call__(self, model: str, version: str) -> Reference | None:
        key = (model, version)
        if key not in self._seen:
            self._seen[key] = (self.lookup(self.conn, model, version)
                               if self.lookup is not None else None)
        return self._seen[key]


class Checkpointer:
    def __init__(self, assigner: WindowAssigner, lateness_ms: int, alpha: float, min_samples: int,
                 embedding_dims: dict[str, int], references: ReferenceLookup | None = None,
                 hooks: Sequence[CheckpointHook] = (), intake: Intake | None = None) -> None:
        self.assigner = assigner
        self.intake = intake
        # Learnt by the decoder from the first embedding of each model; persisted here.
        self.embedding_dims = embedding_dims
        self._dims_saved: set[str] = set(embedding_dims)
        self.lateness_ms = lateness_ms
        self.alpha = alpha
        self.min_samples = min_samples
        self.references = references
        self.by_name: dict[str, Detector] = {d.name: d for d in assigner.detectors}
        self._label_aware = [d for d in assigner.detectors if isinstance(d, LabelObserver)]
        self.hooks: list[CheckpointHook] = list(hooks)
        self._label_hooks = [h for h in self.hooks if isinstance(h, LabelHook)]

    def run(self, conn: Connection, cp: CheckpointInput) -> CheckpointResult:
        """Steps 1-7; the caller owns the transaction and commits it (step 8)."""
        result = CheckpointResult()
        if self.references is not None:
            self.references.tick()
        refs = CheckpointReferences(self.references, conn)
        stored = self._check_offsets(conn, cp, lock=False)  # 1
        if self.intake is not None:
            extra = self.intake.begin(conn, cp.parked, cp.batches, cp.evaluate_all)
            cp = replace(cp, batches=[*cp.batches, *extra.batches],
                         rejected=[*cp.rejected, *extra.rejected])
            result.dead_letters = extra.rejected
        self._store_rejected(conn, cp.rejected, result)  # 2
        deltas = Deltas()
        new_ids: list[str] = []
        for batch in cp.batches:  # 3
            batch, within = _first_occurrences(batch)
            result.duplicates += within
            slice_labels = self.assigner.slice_labels(batch)
            keep = predictions.insert_new(conn, batch,
                                          window_start(batch.ts_ms, self.assigner.size_ms),
                                          self.assigner.joined(slice_labels, len(batch)))
            result.duplicates += int((~keep).sum())
            idx = np.flatnonzero(keep)
            fresh = batch.take(idx)
            self.assigner.observe(fresh, [(d, lab[idx]) for d, lab in slice_labels], deltas,
                                  refs)  # 4
            _count_accepted(fresh, result)
            new_ids += fresh.event_id.tolist()
            for hook in self.hooks:
                hook.on_predictions(conn, fresh)
        labelled = self._labels_known_before(conn, new_ids)  # 5: labels that came first
        result.labels, relabelled = self._store_labels(conn, cp.labels)
        labelled += relabelled
        result.labels_joined = sum(r["weight"] for r in labelled)
        for hook in self._label_hooks:
            hook.on_labels(conn, labelled)
        self._observe_labels(labelled, deltas)
        # 4 (the merge, once, with prediction and label deltas)
        window_states.merge_deltas(conn, self.by_name, deltas.states, deltas.counts,
                                   self.assigner.size_ms)
        ingest_counts.add(conn, result.accepted)
        watermark = max([*cp.max_ts.values(), *(v[0] for v in stored.values())], default=0)
        result.watermark_ms = watermark
        result.findings = self._evaluate(conn, watermark, cp.evaluate_all, refs)  # 6
        for hook in self.hooks:
            hook.before_commit(conn, result)
        self._store_catalog(conn)  # 7
        stored = self._check_offsets(conn, cp, lock=True)
        offsets.save(conn, cp.group, cp.next,
                     {tp: max(cp.max_ts.get(tp, 0), stored.get(tp, (0, 0))[0]) for tp in cp.next},
                     cp.high_watermarks)
        return result

    # -- 1 ---------------------------------------------------------------------------------
    def _check_offsets(self, conn: Connection, cp: CheckpointInput,
                       lock: bool) -> dict[TopicPartition, tuple[int, int, int]]:
        stored = offsets.lock(conn, cp.group, list(cp.next), for_update=lock)
        fenced = sorted(tp for tp, epoch in cp.epochs.items()
                        if tp in cp.next and stored.get(tp, (0, 0, 0))[2] != epoch)
        if fenced:
            raise Fenced(cp.group, fenced)
        for tp, start in cp.start.items():
            have = stored.get(tp, (0, 0, 0))[1]
            if have != start or cp.next[tp] < start:
                raise OffsetRegression(tp[0], tp[1], have, start)
        return stored

    # -- 2 ---------------------------------------------------------------------------------
    def _store_rejected(self, conn: Connection, rejections: Sequence[Any], result: CheckpointResult) -> None:
        rows = []
        for r in rejections:
            model = version = None
            try:  # best effort, so `vitmon status` can attribute rejects to a model version
                body = orjson.loads(r.value) if r.value else None
                if isinstance(body, dict):
                    model = body.get("model") if isinstance(body.get("model"), str) else None
                    v = body.get("model_version")
                    version = v if isinstance(v, str) else None
            except orjson.JSONDecodeError:
                pass
            rows.append({"topic": r.topic, "p": r.partition, "o": r.offset, "reason": r.reason,
                         "detail": r.detail[:1000], "eid": r.event_id, "model": model,
                         "ver": version, "key": r.key, "raw": r.value})
            result.rejected[r.reason] = result.rejected.get(r.reason, 0) + 1
        rejected.insert(conn, rows)

    # -- 5 ---------------------------------------------------------------------------------
    def _labels_known_before(self, conn: Connection, event_ids: list[str]) -> list[dict[str, Any]]:
        """Predictions inserted now whose label arrived earlier: join them (+1 each)."""
        if not event_ids or not (self._label_aware or self._label_hooks):
            return []
        known = labels.known(conn, event_ids)
        return self._with_predictions(conn, {e: [(label, 1)] for e, label in known.items()})

    def _store_labels(self, conn: Connection, decoded: Sequence[Any]) -> tuple[int, list[dict[str, Any]]]:
        """Upsert labels (the last one received wins) and return the joins they change:
        +1 for a first label, -1/+1 for a label replaced by a different one."""
        rows: dict[str, dict[str, Any]] = {}
        for lab in decoded:  # in offset order, so the last label of an event wins
            for i in range(len(lab.event_id)):
                rows[lab.event_id[i]] = {"e": lab.event_id[i], "l": int(lab.label[i]),
                                         "t": int(lab.ts_ms[i]), "src": lab.source[i],
                                         "p": int(lab.partition[i]), "o": int(lab.offset[i])}
        if not rows:
            return 0, []
        old = labels.upsert(conn, rows)
        if not (self._label_aware or self._label_hooks):
            return len(rows), []
        changes: dict[str, list[tuple[int, int]]] = {}
        for e in sorted(rows):
            new, prev = rows[e]["l"], old.get(e)
            if prev is None:
                changes[e] = [(new, 1)]
            elif prev != new:
                changes[e] = [(prev, -1), (new, 1)]
        return len(rows), self._with_predictions(conn, changes)

    def _with_predictions(self, conn: Connection,
                          changes: Mapping[str, list[tuple[int, int]]]) -> list[dict[str, Any]]:
        if not changes:
            return []
        out = []
        for p in predictions.join_rows(conn, changes):
            for label, weight in changes[p.event_id]:
                out.append({**p._asdict(), "label": label, "weight": weight})
        return out

    def _observe_labels(self, labelled: list[dict[str, Any]], deltas: Deltas) -> None:
        """Group joined rows by (model, version, window, slice) and fold them into deltas."""
        if not labelled or not self._label_aware:
            return
        groups: dict[tuple[str, str, int, str], list[dict[str, Any]]] = {}
        for row in labelled:
            for slice_name in row["slices"].split(SLICE_SEPARATOR):
                key = (row["model"], row["model_version"], row["window_start_ms"], slice_name)
                groups.setdefault(key, []).append(row)
        for (model, version, start, slice_name), rows in sorted(groups.items()):
            batch = _labelled_batch(rows)
            for det in self._label_aware:
                key = WindowKey(det.name, model, version, slice_name, start)
                prev = deltas.states.get(key)
                deltas.states[key] = det.observe_labels(det.empty() if prev is None else prev, batch)
                deltas.counts.setdefault(key, 0)

    # -- 6 ---------------------------------------------------------------------------------
    def _evaluate(self, conn: Connection, watermark: int, everything: bool,
                  refs: CheckpointReferences) -> list[tuple[WindowKey, Finding]]:
        """Evaluate changed windows whose end + allowed lateness the watermark has passed."""
        horizon = None if everything else watermark - self.lateness_ms
        dirty = window_states.load_states(conn, self.by_name, dirty=True, dirty_until=horizon,
                                          lock=True)
        # The family sharing alpha is every slice of the detector in the window, not only the
        # re-evaluated (dirty) ones; ``look`` counts the window's earlier evaluations.
        slices_per = window_states.slices_in_windows(conn, sorted(
            {(s.key.detector, s.key.model, s.key.model_version, s.key.window_start_ms)
             for s in dirty}))
        looks = finding_revisions(conn, [s.key for s in dirty])
        out: list[tuple[WindowKey, Finding]] = []
        for s in dirty:
            key = s.key
            n_tests = slices_per.get(
                (key.detector, key.model, key.model_version, key.window_start_ms), 1)
            ctx = EvalContext(state_key(key, self.assigner.size_ms),
                              refs(key.model, key.model_version), self.alpha, n_tests,
                              self.min_samples, looks.get(key, 0))
            for finding in s.detector.evaluate(s.state, ctx):
                out.append((key, finding))
        size = self.assigner.size_ms
        upsert_findings(conn, [(k, k.window_start_ms + size, f) for k, f in out])
        window_states.mark_evaluated(conn, horizon, [s.key for s in dirty], list(self.by_name))
        return out

    # -- 7 ---------------------------------------------------------------------------------
    def _store_catalog(self, conn: Connection) -> None:
        catalog.add(conn, [(catalog.EMBEDDING_DIM, m, str(d)) for m, d in self.embedding_dims.items()
                           if m not in self._dims_saved])
        if self.intake is not None:
            self.intake.finish(conn)

    def committed(self) -> None:
        """Call after the transaction commits: learnt catalog entries are now durable."""
        self._dims_saved = set(self.embedding_dims)
        if self.intake is not None:
            self.intake.committed()


def _first_occurrences(batch: Batch) -> tuple[Batch, int]:
    """Drop repeated event_ids inside one batch (the first occurrence stays)."""
    _, first = np.unique(batch.event_id.astype(str), return_index=True)
    if len(first) == len(batch):
        return batch, 0
    first.sort()
    return batch.take(first), len(batch) - len(first)


def _count_accepted(batch: Batch, result: CheckpointResult) -> None:
    if len(batch) == 0:
        return
    model = str(batch.model[0])
    versions, counts = np.unique(batch.model_version.astype(str), return_counts=True)
    for version, count in zip(versions, counts):
        key = (model, str(version))
        result.accepted[key] = result.accepted.get(key, 0) + int(count)


def _labelled_batch(rows: list[dict[str, Any]]) -> LabelledBatch:
    n = len(rows)
    names = sorted({k for r in rows for k in (r["attrs"] or {})})
    attrs = {k: np.array([(r["attrs"] or {}).get(k) for r in rows], dtype=object) for k in names}
    return LabelledBatch(
        event_id=np.array([r["event_id"] for r in rows], dtype=object),
        ts_ms=np.fromiter((r["ts_ms"] for r in rows), np.int64, n),
        pred=np.fromiter((r["pred"] for r in rows), np.int32, n),
        label=np.fromiter((r["label"] for r in rows), np.int64, n),
        weight=np.fromiter((r["weight"] for r in rows), np.int64, n),
        confidence=np.array([np.nan if r["confidence"] is None else r["confidence"] for r in rows],
                            dtype=np.float32),
        is_error=np.fromiter((r["is_error"] for r in rows), bool, n),
        attrs=attrs)
