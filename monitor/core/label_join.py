"""Step 5 of the checkpoint: labels join their predictions, whichever came first.

Labels are stored (the last one received wins); each (prediction, label) change is returned as
a row of the prediction's columns plus ``label`` and ``weight`` (+1 a new label, -1/+1 a
replaced one), and folded into the prediction's own window and slices for the detectors that
observe labels (:class:`~monitor.contract.LabelObserver`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection

from monitor.contract import Detector, LabelledBatch, LabelObserver
from monitor.core.windows import Deltas
from monitor.store import labels, predictions
from monitor.store.keys import WindowKey
from monitor.store.terms import Terms


class LabelJoin:
    """``wanted``: someone besides the detectors (a label hook) wants the joined rows."""

    def __init__(self, detectors: Iterable[Detector], wanted: bool, terms: Terms) -> None:
        self.detectors = [d for d in detectors if isinstance(d, LabelObserver)]
        self.wanted = wanted or bool(self.detectors)
        self.terms = terms

    def join(self, conn: Connection, new_ids: list[str],
             decoded: Sequence[Any]) -> tuple[int, list[dict[str, Any]]]:
        """Step 5: join the predictions inserted by this checkpoint (``new_ids``) with labels
        stored earlier, then store ``decoded`` labels and join them with stored predictions.
        -> (labels stored, joined rows). Locked against other processes doing the same for the
        same events at the same moment (:func:`monitor.store.labels.lock_join`), so a label and
        its prediction checkpointed by two processes at once are joined exactly once."""
        if self.wanted:
            labels.lock_join(conn, new_ids, (e for lab in decoded for e in lab.event_id))
        joined = self.known_before(conn, new_ids)
        n, relabelled = self.store(conn, decoded)
        return n, joined + relabelled

    def known_before(self, conn: Connection, event_ids: list[str]) -> list[dict[str, Any]]:
        """Predictions inserted now whose label arrived earlier: join them (+1 each)."""
        if not event_ids or not (self.wanted):
            return []
        known = labels.known(conn, event_ids)
        return self._with_predictions(conn, {e: [(label, 1)] for e, label in known.items()})

    def store(self, conn: Connection, decoded: Sequence[Any]) -> tuple[int, list[dict[str, Any]]]:
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
        if not (self.wanted):
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
        for p in predictions.join_rows(conn, changes, self.terms):
            for label, weight in changes[p["event_id"]]:
                out.append({**p, "label": label, "weight": weight})
        return out

    def observe(self, labelled: list[dict[str, Any]], deltas: Deltas) -> None:
        """Group joined rows by (model, version, window, slice) and fold them into deltas."""
        if not labelled or not self.detectors:
            return
        groups: dict[tuple[str, str, int, str], list[dict[str, Any]]] = {}
        for row in labelled:
            for slice_name in row["slices"]:
                key = (row["model"], row["model_version"], row["window_start_ms"], slice_name)
                groups.setdefault(key, []).append(row)
        for (model, version, start, slice_name), rows in sorted(groups.items()):
            batch = _labelled_batch(rows)
            for det in self.detectors:
                key = WindowKey(det.name, model, version, slice_name, start)
                prev = deltas.states.get(key)
                deltas.states[key] = det.observe_labels(det.empty() if prev is None else prev, batch)
                deltas.counts.setdefault(key, 0)


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
