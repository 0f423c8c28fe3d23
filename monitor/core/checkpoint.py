"""The checkpoint: one numbered procedure in ONE PostgreSQL transaction.

1. Lock this consumer's offset rows; refuse if any stored offset differs from where this
   checkpoint's records started (another process owns the partition, or offsets would go back).
2. Store rejected events (original bytes + reason); a replay after a crash inserts nothing twice.
3. Insert the accepted predictions; the primary key on ``event_id`` drops duplicates, and only
   the rows actually inserted go on (a duplicate ``event_id`` is counted once, across restarts).
4. Observe the new rows into per-(detector, model, version, slice, window) deltas and merge
   them into the stored window states (insert new keys, lock and merge existing ones).
5. Join labels with predictions, whichever came first: store labels (the last one wins) and
   fold each (prediction, label) change into the prediction's own window and slices (+1 for a
   new label, -1/+1 for a replaced one) for detectors that observe labels.
6. Evaluate windows the watermark has closed and that changed since their last evaluation.
7. Persist learnt catalog entries (embedding dims, admitted slice values) and the offsets.
8. Commit. Only the caller, after this returns, updates metrics and sends alerts.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import orjson
from sqlalchemy import Connection, text

from monitor.contract import (
    Batch,
    Detector,
    EvalContext,
    Finding,
    LabelledBatch,
    Reference,
)
from monitor.errors import OffsetRegression
from monitor.finding_rows import upsert_findings
from monitor.windows import SLICE_SEPARATOR, DeltaKey, Deltas, WindowAssigner, state_key, window_start

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
ReferenceLookup = Callable[[Connection, str, str], "Reference | None"]


@dataclass
class CheckpointInput:
    group: str
    start: dict[TopicPartition, int]  # offset the records of this checkpoint started at
    next: dict[TopicPartition, int]  # offset after the last record read
    max_ts: dict[TopicPartition, int]  # highest event time seen per partition
    high_watermarks: dict[TopicPartition, int]
    batches: Sequence[Batch] = ()
    labels: Sequence[Any] = ()  # monitor.decode.LabelDecode
    rejected: Sequence[Any] = ()  # monitor.decode.Rejection
    evaluate_all: bool = False  # flush: evaluate every changed window, closed or not


@dataclass
class CheckpointResult:
    accepted: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, version) -> new
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count
    labels: int = 0
    labels_joined: int = 0  # net (prediction, label) pairs joined by this checkpoint
    findings: list[tuple[DeltaKey, Finding]] = field(default_factory=list)
    watermark_ms: int = 0


class CheckpointHook(Protocol):
    """Extra work inside the checkpoint transaction (e.g. SLO good/total buckets).

    A hook may also define ``on_labels(conn, rows)``: the label-join changes of step 5 (dicts
    with the prediction's columns plus ``label`` and ``weight`` +1/-1), e.g. for accuracy SLOs.
    """

    def on_predictions(self, conn: Connection, batch: Batch) -> None: ...
    def before_commit(self, conn: Connection, result: CheckpointResult) -> None: ...


def pack(data: bytes) -> bytes:
    return zlib.compress(data, 1)


def unpack(data: bytes) -> bytes:
    return zlib.decompress(data)


class Checkpointer:
    def __init__(self, assigner: WindowAssigner, lateness_ms: int, alpha: float, min_samples: int,
                 embedding_dims: dict[str, int], references: ReferenceLookup | None = None,
                 hooks: Sequence[CheckpointHook] = ()) -> None:
        self.assigner = assigner
        # Learnt by the decoder from the first embedding of each model; persisted here.
        self.embedding_dims = embedding_dims
        self._dims_saved: set[str] = set(embedding_dims)
        self.lateness_ms = lateness_ms
        self.alpha = alpha
        self.min_samples = min_samples
        self.references = references
        self.by_name: dict[str, Detector] = {d.name: d for d in assigner.detectors}
        self._label_aware = [d for d in assigner.detectors if hasattr(d, "observe_labels")]
        self.hooks: list[CheckpointHook] = list(hooks)
        self._label_hooks = [h for h in self.hooks if hasattr(h, "on_labels")]

    def run(self, conn: Connection, cp: CheckpointInput) -> CheckpointResult:
        """Steps 1-7; the caller owns the transaction and commits it (step 8)."""
        result = CheckpointResult()
        if hasattr(self.references, "tick"):  # lets a cached reference lookup expire
            self.references.tick()
        stored = self._lock_offsets(conn, cp)  # 1
        self._store_rejected(conn, cp.rejected, result)  # 2
        deltas = Deltas()
        new_ids: list[str] = []
        for batch in cp.batches:  # 3
            batch, within = _first_occurrences(batch)
            result.duplicates += within
            labels = self.assigner.slice_labels(batch)
            keep = self._insert_predictions(conn, batch, self.assigner.joined(labels, len(batch)))
            result.duplicates += int((~keep).sum())
            idx = np.flatnonzero(keep)
            fresh = batch.take(idx)
            self.assigner.observe(fresh, [(d, lab[idx]) for d, lab in labels], deltas)  # 4
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
        self._merge(conn, deltas)  # 4 (the merge, once, with prediction and label deltas)
        self._store_counts(conn, result.accepted)
        watermark = max([*cp.max_ts.values(), *(w for w, _ in stored.values())], default=0)
        result.watermark_ms = watermark
        result.findings = self._evaluate(conn, watermark, cp.evaluate_all)  # 6
        for hook in self.hooks:
            hook.before_commit(conn, result)
        self._store_catalog(conn)  # 7
        self._store_offsets(conn, cp, stored)
        return result

    # -- 1 ---------------------------------------------------------------------------------
    def _lock_offsets(self, conn: Connection, cp: CheckpointInput) -> dict[TopicPartition, tuple[int, int]]:
        tps = sorted(cp.next)
        rows = conn.execute(text(
            "SELECT topic, kafka_partition, next_offset, watermark_ms FROM consumer_offsets "
            "WHERE consumer_group = :g AND (topic, kafka_partition) IN "
            "(SELECT * FROM unnest(CAST(:t AS text[]), CAST(:p AS int[]))) "
            "ORDER BY topic, kafka_partition FOR UPDATE"),
            {"g": cp.group, "t": [t for t, _ in tps], "p": [p for _, p in tps]}).all()
        stored = {(r.topic, r.kafka_partition): (r.watermark_ms, r.next_offset) for r in rows}
        for tp, start in cp.start.items():
            have = stored.get(tp, (0, 0))[1]
            if have != start or cp.next[tp] < start:
                raise OffsetRegression(tp[0], tp[1], have, start)
        return stored

    # -- 2 ---------------------------------------------------------------------------------
    def _store_rejected(self, conn: Connection, rejected: Sequence[Any], result: CheckpointResult) -> None:
        if not rejected:
            return
        rows = []
        for r in rejected:
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
        conn.execute(text(
            "INSERT INTO rejected_events (topic, kafka_partition, kafka_offset, reason, detail, "
            "event_id, model, model_version, message_key, raw) VALUES (:topic, :p, :o, :reason, "
            ":detail, :eid, :model, :ver, :key, :raw) ON CONFLICT DO NOTHING"), rows)

    # -- 3 ---------------------------------------------------------------------------------
    def _insert_predictions(self, conn: Connection, batch: Batch, slices: np.ndarray) -> np.ndarray:
        """COPY into a temp table, insert what is new; return a mask of the rows inserted."""
        n = len(batch)
        if n == 0:
            return np.zeros(0, dtype=bool)
        starts = window_start(batch.ts_ms, self.assigner.size_ms)
        attrs = _attrs_json(batch)
        none = np.full(n, None, dtype=object)
        sha = batch.extras.get("input_sha256", none)
        uri = batch.extras.get("sample_uri", none)
        part, off = batch.extras["_partition"], batch.extras["_offset"]
        conf = batch.confidence.astype(np.float64)
        conf_col = np.where(np.isnan(conf), None, conf).tolist()
        rows = zip(batch.event_id.tolist(), batch.ts_ms.tolist(), batch.model.tolist(),
                   batch.model_version.tolist(), starts.tolist(), batch.pred.tolist(), conf_col,
                   batch.is_error.tolist(), batch.latency_ms.tolist(), slices.tolist(), attrs,
                   sha.tolist(), uri.tolist(), part.tolist(), off.tolist())
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cur:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS tmp_predictions "
                        "(LIKE predictions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            with cur.copy(f"COPY tmp_predictions ({_PRED_COLS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(f"INSERT INTO predictions ({_PRED_COLS}) SELECT {_PRED_COLS} "
                        "FROM tmp_predictions ON CONFLICT (event_id) DO NOTHING RETURNING event_id")
            inserted = {r[0] for r in cur.fetchall()}
        return np.fromiter((e in inserted for e in batch.event_id), dtype=bool, count=n)

    # -- 4 ---------------------------------------------------------------------------------
    def _merge(self, conn: Connection, deltas: Deltas) -> None:
        """Merge deltas into stored states. Keys are handled in sorted order so two processes
        lock rows in the same order (no deadlock between them)."""
        if not deltas.states:
            return
        size = self.assigner.size_ms
        keys = sorted(deltas.states, key=_key_tuple)
        params = [{"d": k.detector, "m": k.model, "v": k.model_version, "s": k.slice,
                   "w": k.window_start_ms, "e": k.window_start_ms + size,
                   "dv": self.by_name[k.detector].version, "n": deltas.counts[k],
                   "st": pack(self.by_name[k.detector].dumps(deltas.states[k]))} for k in keys]
        # New keys take the delta as their state; for keys that exist, DO NOTHING waits for a
        # concurrent inserter to commit, then the merge below sees its committed state.
        inserted = conn.execute(text(
            "INSERT INTO window_states (detector, model, model_version, slice, window_start_ms, "
            "window_end_ms, detector_version, n_events, state, dirty) "
            "SELECT * FROM unnest(CAST(:d AS text[]), CAST(:m AS text[]), CAST(:v AS text[]), "
            "CAST(:s AS text[]), CAST(:w AS bigint[]), CAST(:e AS bigint[]), CAST(:dv AS int[]), "
            "CAST(:n AS bigint[]), CAST(:st AS bytea[]), "
            "array_fill(true, ARRAY[cardinality(CAST(:d AS text[]))])) "
            "ON CONFLICT DO NOTHING "
            "RETURNING detector, model, model_version, slice, window_start_ms"),
            _columns(params)).all()
        fresh = {tuple(r) for r in inserted}
        existing = [k for k in keys if _key_tuple(k) not in fresh]
        if not existing:
            return
        cols = _columns([{"d": k.detector, "m": k.model, "v": k.model_version, "s": k.slice,
                          "w": k.window_start_ms} for k in existing])
        rows = conn.execute(text(
            "SELECT ws.detector, ws.model, ws.model_version, ws.slice, ws.window_start_ms, "
            "ws.state, ws.n_events FROM window_states ws JOIN unnest(CAST(:d AS text[]), "
            "CAST(:m AS text[]), CAST(:v AS text[]), CAST(:s AS text[]), CAST(:w AS bigint[])) "
            "AS k(d, m, v, s, w) ON ws.detector = k.d AND ws.model = k.m "
            "AND ws.model_version = k.v AND ws.slice = k.s AND ws.window_start_ms = k.w "
            "ORDER BY 1, 2, 3, 4, 5 FOR UPDATE OF ws"), cols).all()
        updates = []
        for r in rows:
            key = DeltaKey(r.detector, r.model, r.model_version, r.slice, r.window_start_ms)
            det = self.by_name[key.detector]
            merged = det.merge(det.loads(unpack(r.state)), deltas.states[key])
            updates.append({"d": key.detector, "m": key.model, "v": key.model_version,
                            "s": key.slice, "w": key.window_start_ms,
                            "n": r.n_events + deltas.counts[key],
                            "st": pack(det.dumps(merged))})
        conn.execute(text(
            "UPDATE window_states ws SET state = u.st, n_events = u.n, dirty = true, "
            "updated_at = now() FROM unnest(CAST(:d AS text[]), CAST(:m AS text[]), "
            "CAST(:v AS text[]), CAST(:s AS text[]), CAST(:w AS bigint[]), CAST(:n AS bigint[]), "
            "CAST(:st AS bytea[])) AS u(d, m, v, s, w, n, st) WHERE ws.detector = u.d "
            "AND ws.model = u.m AND ws.model_version = u.v AND ws.slice = u.s "
            "AND ws.window_start_ms = u.w"), _columns(updates))

    def _store_counts(self, conn: Connection, accepted: Mapping[tuple[str, str], int]) -> None:
        if accepted:
            conn.execute(text(
                "INSERT INTO ingest_counts (model, model_version, accepted) VALUES (:m, :v, :n) "
                "ON CONFLICT (model, model_version) DO UPDATE SET "
                "accepted = ingest_counts.accepted + excluded.accepted, updated_at = now()"),
                [{"m": m, "v": v, "n": n} for (m, v), n in sorted(accepted.items())])

    # -- 5 ---------------------------------------------------------------------------------
    def _labels_known_before(self, conn: Connection, event_ids: list[str]) -> list[dict[str, Any]]:
        """Predictions inserted now whose label arrived earlier: join them (+1 each)."""
        if not event_ids or not (self._label_aware or self._label_hooks):
            return []
        rows = conn.execute(text(
            "SELECT l.event_id, l.label FROM labels l WHERE l.event_id = ANY(:ids)"),
            {"ids": event_ids}).all()
        return self._with_predictions(conn, {r.event_id: [(int(r.label), 1)] for r in rows})

    def _store_labels(self, conn: Connection, labels: Sequence[Any]) -> tuple[int, list[dict[str, Any]]]:
        """Upsert labels (the last one received wins) and return the joins they change:
        +1 for a first label, -1/+1 for a label replaced by a different one."""
        rows: dict[str, dict[str, Any]] = {}
        for lab in labels:  # in offset order, so the last label of an event wins
            for i in range(len(lab.event_id)):
                rows[lab.event_id[i]] = {"e": lab.event_id[i], "l": int(lab.label[i]),
                                         "t": int(lab.ts_ms[i]), "src": lab.source[i],
                                         "p": int(lab.partition[i]), "o": int(lab.offset[i])}
        if not rows:
            return 0, []
        ids = sorted(rows)
        old = {r.event_id: int(r.label) for r in conn.execute(text(
            "SELECT event_id, label FROM labels WHERE event_id = ANY(:ids) ORDER BY event_id "
            "FOR UPDATE"), {"ids": ids}).all()}
        conn.execute(text(
            "INSERT INTO labels (event_id, label, ts_ms, source, kafka_partition, kafka_offset) "
            "VALUES (:e, :l, :t, :src, :p, :o) ON CONFLICT (event_id) DO UPDATE SET "
            "label = excluded.label, ts_ms = excluded.ts_ms, source = excluded.source, "
            "kafka_partition = excluded.kafka_partition, kafka_offset = excluded.kafka_offset, "
            "received_at = now()"), [rows[e] for e in ids])
        if not (self._label_aware or self._label_hooks):
            return len(rows), []
        changes: dict[str, list[tuple[int, int]]] = {}
        for e in ids:
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
        preds = conn.execute(text(
            "SELECT event_id, model, model_version, ts_ms, window_start_ms, pred, confidence, "
            "is_error, slices, attrs FROM predictions WHERE event_id = ANY(:ids)"),
            {"ids": list(changes)}).all()
        out = []
        for p in preds:
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
                key = DeltaKey(det.name, model, version, slice_name, start)
                prev = deltas.states.get(key)
                deltas.states[key] = det.observe_labels(det.empty() if prev is None else prev, batch)
                deltas.counts.setdefault(key, 0)

    # -- 6 ---------------------------------------------------------------------------------
    def _evaluate(self, conn: Connection, watermark: int, everything: bool) -> list[tuple[DeltaKey, Finding]]:
        """Evaluate changed windows whose end + allowed lateness the watermark has passed."""
        horizon = None if everything else watermark - self.lateness_ms
        rows = conn.execute(text(
            "SELECT detector, model, model_version, slice, window_start_ms, state, n_events "
            "FROM window_states WHERE dirty AND (CAST(:h AS bigint) IS NULL OR window_end_ms <= :h) "
            "ORDER BY detector, model, model_version, window_start_ms, slice FOR UPDATE"),
            {"h": horizon}).all()
        if not rows:
            return []
        slices_per = {}
        for r in rows:  # slices evaluated together share the detector's alpha
            k = (r.detector, r.model, r.model_version, r.window_start_ms)
            slices_per[k] = slices_per.get(k, 0) + 1
        refs: dict[tuple[str, str], Reference | None] = {}
        out: list[tuple[DeltaKey, Finding]] = []
        for r in rows:
            det = self.by_name.get(r.detector)
            if det is None:  # a detector disabled since: keep its state, do not evaluate
                continue
            key = DeltaKey(r.detector, r.model, r.model_version, r.slice, r.window_start_ms)
            if (r.model, r.model_version) not in refs:
                refs[(r.model, r.model_version)] = (
                    self.references(conn, r.model, r.model_version) if self.references else None)
            n_tests = slices_per[(r.detector, r.model, r.model_version, r.window_start_ms)]
            ctx = EvalContext(state_key(key, self.assigner.size_ms),
                              refs[(r.model, r.model_version)], self.alpha, n_tests,
                              self.min_samples)
            for finding in det.evaluate(det.loads(unpack(r.state)), ctx):
                out.append((key, finding))
        self._store_findings(conn, out)
        conn.execute(text(
            "UPDATE window_states SET dirty = false WHERE dirty "
            "AND (CAST(:h AS bigint) IS NULL OR window_end_ms <= :h)"), {"h": horizon})
        return out

    def _store_findings(self, conn: Connection, findings: list[tuple[DeltaKey, Finding]]) -> None:
        size = self.assigner.size_ms
        upsert_findings(conn, [(k, k.window_start_ms + size, f) for k, f in findings])

    # -- 7 ---------------------------------------------------------------------------------
    def _store_catalog(self, conn: Connection) -> None:
        added = [("slice_value", a, v) for a, v in self.assigner.catalog.added]
        added += [("embedding_dim", m, str(d)) for m, d in self.embedding_dims.items()
                  if m not in self._dims_saved]
        if added:
            conn.execute(text("INSERT INTO catalog (kind, name, value) VALUES (:k, :n, :v) "
                              "ON CONFLICT DO NOTHING"),
                         [{"k": k, "n": n, "v": v} for k, n, v in added])

    def committed(self) -> None:
        """Call after the transaction commits: learnt catalog entries are now durable."""
        self.assigner.catalog.drain_added()
        self._dims_saved = set(self.embedding_dims)

    def _store_offsets(self, conn: Connection, cp: CheckpointInput,
                       stored: Mapping[TopicPartition, tuple[int, int]]) -> None:
        rows = [{"g": cp.group, "t": tp[0], "p": tp[1], "o": nxt,
                 "w": max(cp.max_ts.get(tp, 0), stored.get(tp, (0, 0))[0]),
                 "h": cp.high_watermarks.get(tp)} for tp, nxt in cp.next.items()]
        idle = [{"g": cp.group, "t": tp[0], "p": tp[1], "h": h}
                for tp, h in cp.high_watermarks.items() if tp not in cp.next]
        if idle:  # partitions without records this time: only their log end moved
            conn.execute(text(
                "UPDATE consumer_offsets SET high_watermark = :h WHERE consumer_group = :g "
                "AND topic = :t AND kafka_partition = :p"), idle)
        if rows:
            conn.execute(text(
                "INSERT INTO consumer_offsets (consumer_group, topic, kafka_partition, next_offset, "
                "watermark_ms, high_watermark) VALUES (:g, :t, :p, :o, :w, :h) "
                "ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE SET "
                "next_offset = excluded.next_offset, watermark_ms = excluded.watermark_ms, "
                "high_watermark = excluded.high_watermark, updated_at = now()"), rows)


_PRED_COLS = ("event_id, ts_ms, model, model_version, window_start_ms, pred, confidence, "
              "is_error, latency_ms, slices, attrs, input_sha256, sample_uri, "
              "kafka_partition, kafka_offset")


def _key_tuple(k: DeltaKey) -> tuple[str, str, str, str, int]:
    return (k.detector, k.model, k.model_version, k.slice, k.window_start_ms)


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Row dicts -> one list per parameter, for ``unnest`` (one statement, not N)."""
    return {name: [r[name] for r in rows] for name in rows[0]} if rows else {}


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


def _attrs_json(batch: Batch) -> list[str | None]:
    if not batch.attrs:
        return [None] * len(batch)
    names = list(batch.attrs)
    cols = [batch.attrs[k].tolist() for k in names]
    return [orjson.dumps({k: v for k, v in zip(names, vals) if v is not None}).decode()
            for vals in zip(*cols)]
