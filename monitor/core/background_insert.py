"""Storing a checkpoint's predictions on a second thread while the checkpoint thread observes
them (checkpoint steps 3 and 4 side by side).

The insert is mostly a wait on PostgreSQL: in ``bench/ingest.py``'s headline its stage clock
said 2.6 s while py-spy found 0.6 s of Python in it, and the checkpoint thread is the consumer's
critical path (its polling thread, the buffer full, has nothing to do meanwhile). Waiting on the
socket releases the GIL, so observing goes on during the wait.

The inserting thread first probes which rows are stored already (a re-sent event) for every
batch, then copies the new rows. The checkpoint thread waits for the probes only, then observes
the new rows while the copies run; it runs no SQL meanwhile (the references it observes against
are looked up before the start), so only one thread at a time uses the connection. Should
another transaction store some of the same events between the probe and the copy (two
processes reading one re-sent event), the copy skips them and the batches are observed again
from the rows actually stored.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection

from monitor.contract import Batch
from monitor.core.checkpoint_references import CheckpointReferences
from monitor.core.stages import Clock
from monitor.core.windows import Deltas, WindowAssigner, window_start
from monitor.store import predictions
from monitor.store.terms import Terms

#: A batch and its slice labels (:meth:`WindowAssigner.slice_labels`)
Sliced = tuple[Batch, list[tuple[Any, np.ndarray]]]


def insert_and_observe(conn: Connection, sliced: Sequence[Sliced], assigner: WindowAssigner,
                       refs: CheckpointReferences, terms: Terms,
                       clock: Clock) -> tuple[Deltas, list[Sliced]]:
    """Store the batches' predictions (checkpoint step 3) on their own thread while observing
    them into new deltas (step 4); return the deltas and, per batch, the rows stored (the
    others were stored already) with their slice labels."""
    for batch, _ in sliced:  # looked up now: observing runs no SQL while the insert runs
        for version in np.unique(batch.model_version.astype(str)):
            refs(str(batch.model[0]), str(version))
    inserts = Inserts(conn, [(b, window_start(b.ts_ms, assigner.size_ms), [lab for _, lab in labs])
                             for b, labs in sliced], terms, clock)
    deltas = Deltas()
    try:
        with clock("postgres:predictions:wait"):
            new = inserts.probed()
        for (batch, labs), keep in zip(sliced, new, strict=True):
            assigner.observe(*_rows(batch, labs, keep), deltas, refs, clock)
        with clock("postgres:predictions:wait"):
            stored = inserts.result()
    except BaseException:
        inserts.settle()
        raise
    if any((a != b).any() for a, b in zip(new, stored, strict=True)):  # lost a race: again
        deltas = Deltas()
        for (batch, labs), keep in zip(sliced, stored, strict=True):
            assigner.observe(*_rows(batch, labs, keep), deltas, refs, clock)
    return deltas, [_rows(b, labs, keep) for (b, labs), keep in zip(sliced, stored, strict=True)]


def _rows(batch: Batch, labels: list[tuple[Any, np.ndarray]], keep: np.ndarray) -> Sliced:
    """The rows of ``batch`` (and their slice labels) that ``keep`` marks."""
    if keep.all():
        return batch, labels
    return batch.take(np.flatnonzero(keep)), [(d, lab[keep]) for d, lab in labels]


class Inserts:
    """The predictions of one checkpoint being stored on their own thread: every batch probed
    (:func:`monitor.store.predictions.not_stored`), then every batch's new rows copied."""

    def __init__(self, conn: Connection, rows: Sequence[tuple[Batch, np.ndarray, list[np.ndarray]]],
                 terms: Terms, clock: Clock) -> None:
        """``rows``: per batch, its window starts and its slice names per dimension (as
        :func:`monitor.store.predictions.insert_new` takes them). ``clock`` times the work as
        ``postgres:predictions`` (and raises there once the checkpoint is abandoned: a
        checkpoint's clock checks)."""
        self._conn, self._rows, self._terms, self._clock = conn, rows, terms, clock
        self._new: list[np.ndarray] = []
        self._stored: list[np.ndarray] = []
        self._error: BaseException | None = None
        self._probed = threading.Event()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="predictions-insert", daemon=True)
        self._thread.start()

    def probed(self) -> list[np.ndarray]:
        """Wait for the probes; per batch, the mask of the rows not stored yet."""
        self._probed.wait()
        if self._error is not None:
            raise self._error
        return self._new

    def result(self) -> list[np.ndarray]:
        """Wait for the copies; per batch, the mask of the rows stored (the others were stored
        already). Re-raises what the inserting thread raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._stored

    def settle(self) -> None:
        """The checkpoint failed on its own thread: stop after the statement in flight and
        wait, so the connection is free before the transaction rolls back. Never raises."""
        self._cancel.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            with self._clock("postgres:predictions"):
                self._new = [predictions.not_stored(self._conn, batch)
                             for batch, _, _ in self._rows]
            self._probed.set()
            for (batch, starts, slice_names), new in zip(self._rows, self._new, strict=True):
                if self._cancel.is_set():
                    return
                with self._clock("postgres:predictions"):
                    self._stored.append(predictions.insert_unstored(
                        self._conn, batch, starts, slice_names, self._terms, new))
        except BaseException as exc:  # handed to the checkpoint thread
            self._error = exc
        finally:
            self._probed.set()  # never leave the checkpoint thread waiting
