"""Detector ``evaluate`` calls in worker processes, beside the ingest (step 6 of the checkpoint).

The consumer is GIL-bound on one core (decoding polls on its main thread, the checkpoint on its
worker thread); the detectors' ``evaluate`` is a pure function of (state, :class:`EvalContext`),
so it can run in another process, on another core, while this one keeps decoding.
:class:`EvaluationPool` owns ``workers`` processes (start method ``spawn``: the consumer has
threads and librdkafka, never a plain fork). Each worker gets the detector instances once, at
start (pickled), and each :class:`~monitor.contract.Reference` once per revision: a reference is
tens of MB and detectors memoise what they derive from it per profile *object*
(``detectors._memo``), so the worker keeps the same object between calls. A revision is the
reference object the main process holds: the service's lookup returns the very same object
while the stored row is unchanged, and a slice warm-up replaces it with a new one (same id,
new revision).

Only evaluation moves: loading, locking and writing stay in the checkpoints' transactions
(:mod:`monitor.core.evaluation`). A job's items are split into one contiguous chunk per
worker; results come back in input order. :meth:`EvaluationPool.evaluate` waits for them (a
flush); :meth:`~EvaluationPool.submit` returns at once and a later checkpoint takes the answers
(:meth:`~EvaluationPool.ready`, :meth:`~EvaluationPool.collect`): the pipelined step 6,
:mod:`monitor.core.evaluation_pipeline`. While waiting, ``check("evaluate")`` is called every
``poll_s`` (a stopping process abandons the checkpoint; late results are dropped). A worker that
dies or raises is logged (one line) and its chunk is evaluated in-process: nothing is lost, and
the findings are the same. Detectors that cannot be pickled: one line, and every evaluation is
in-process (as with ``workers=0``).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import pickle
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any

from threadpoolctl import threadpool_limits

from monitor.contract import Detector, EvalContext, Finding, Reference
from monitor.store.window_states import unpack

log = logging.getLogger(__name__)

#: seconds between two abandon checks while waiting for a worker
POLL_S = 0.05


@dataclass
class EvalItem:
    """One evaluation: detector ``name`` on a stored state -- ``blob`` (packed, decoded by
    whoever evaluates: decoding moves to the worker too) or an already decoded ``state``."""

    name: str
    blob: bytes | None
    state: Any
    ctx: EvalContext


#: what :meth:`EvaluationPool._receive` returns for an answer not there yet
_PENDING = object()


@dataclass
class PoolJob:
    """Items sent to the workers (:meth:`EvaluationPool.submit`): one chunk per worker, the
    job id each was sent as (None: evaluate it in-process) and the answers taken so far."""

    chunks: list[Sequence[EvalItem]]
    sent: list[int | None]
    results: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.results = [None] * len(self.chunks)


@dataclass
class _Worker:
    process: Any  # multiprocessing.process.BaseProcess
    conn: Connection
    refs: set[int] = field(default_factory=set)  # revision tokens this worker holds


class EvaluationPool:
    """``workers`` evaluation processes, started on first use; ``workers=0``: in-process."""

    def __init__(self, detectors: Mapping[str, Detector], workers: int,
                 poll_s: float = POLL_S) -> None:
        self.detectors = dict(detectors)
        self.workers = workers
        self.poll_s = poll_s
        self._blob: bytes | None = None
        self._procs: list[_Worker | None] = []
        self._tokens = itertools.count(1)
        self._jobs = itertools.count(1)
        #: reference_id -> (the reference object of its latest revision, its token)
        self._live: dict[int, tuple[Reference, int]] = {}
        if workers > 0:
            try:
                self._blob = pickle.dumps(list(self.detectors.values()))
            except Exception as exc:  # noqa: BLE001 -- any pickling failure: in-process
                log.warning("evaluation in-process: detectors cannot be pickled error=%s",
                            _describe(exc))
                self.workers = 0

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers now (they import and unpickle while the consumer starts)."""
        for i in range(self.workers):
            self._worker(i)

    def close(self) -> None:
        """Stop every worker (the one in the middle of a chunk too); no process is left."""
        procs, self._procs = self._procs, []
        for w in procs:
            if w is None:
                continue
            try:
                w.conn.send(None)
            except OSError:
                pass
            w.conn.close()
        for w in procs:
            if w is None:
                continue
            w.process.join(0.5)
            if w.process.is_alive():
                w.process.terminate()
                w.process.join(2)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
        self._live.clear()

    def pids(self) -> list[int]:
        """The running workers' process ids (tests, the bench)."""
        return [w.process.pid for w in self._procs if w is not None and w.process.pid]

    def _worker(self, i: int) -> _Worker:
        while len(self._procs) <= i:
            self._procs.append(None)
        w = self._procs[i]
        if w is None:
            ctx = multiprocessing.get_context("spawn")
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(theirs, self._blob), daemon=True,
                               name=f"vitmon-evaluate-{i}")
            proc.start()
            theirs.close()
            w = self._procs[i] = _Worker(proc, mine)
        return w

    def _lost(self, i: int) -> None:
        w = self._procs[i]
        self._procs[i] = None
        if w is not None:
            w.conn.close()
            if w.process.is_alive():
                w.process.kill()
            w.process.join(2)

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, items: Sequence[EvalItem], check: Callable[[str], None]
                 ) -> list[list[Finding]]:
        """Each item's findings, in input order. ``check("evaluate")`` raises to abandon."""
        return self.collect(self.submit(items), check)

    def submit(self, items: Sequence[EvalItem]) -> PoolJob:
        """Send ``items`` to the workers, one contiguous chunk each, without waiting: the
        pipelined step 6 (:mod:`monitor.core.evaluation_pipeline`) takes the answers with
        :meth:`ready` and :meth:`collect` in a later checkpoint. One job at a time: a worker
        answers in order, and the caller sends the next job only once this one is collected."""
        if self.workers <= 0 or not items:
            return PoolJob([items], [None])
        n = min(self.workers, len(items))
        bounds = [len(items) * k // n for k in range(n + 1)]
        chunks = [items[bounds[k]:bounds[k + 1]] for k in range(n)]
        return PoolJob(chunks, [self._send(i, chunk) for i, chunk in enumerate(chunks)])

    def ready(self, job: PoolJob) -> bool:
        """True when :meth:`collect` would not wait for a worker: every chunk answered, or
        lost (then evaluated in-process by :meth:`collect`). Takes what has arrived."""
        for i, sent in enumerate(job.sent):
            if sent is not None and job.results[i] is None:
                got = self._receive(i, sent, None)
                if got is _PENDING:
                    return False
                job.results[i] = got
                if got is None:  # lost or raised: collect evaluates the chunk in-process
                    job.sent[i] = None
        return True

    def collect(self, job: PoolJob, check: Callable[[str], None]) -> list[list[Finding]]:
        """Each item of ``job``'s findings, in input order, waiting for the workers (calling
        ``check("evaluate")`` every ``poll_s``); a lost chunk is evaluated here."""
        out: list[list[Finding]] = []
        for i, (chunk, sent) in enumerate(zip(job.chunks, job.sent)):
            result = job.results[i]
            if result is None and sent is not None:
                result = self._receive(i, sent, check)
            out += result if isinstance(result, list) else self.in_process(chunk, check)
        return out

    def in_process(self, items: Sequence[EvalItem], check: Callable[[str], None]
                   ) -> list[list[Finding]]:
        out = []
        for item in items:
            check("evaluate")
            out.append(_evaluate(self.detectors[item.name], item, item.ctx))
        return out

    def _token(self, ref: Reference) -> int:
        live = self._live.get(ref.reference_id)
        if live is None or live[0] is not ref:
            live = self._live[ref.reference_id] = (ref, next(self._tokens))
        return live[1]

    def _send(self, i: int, chunk: Sequence[EvalItem]) -> int | None:
        """Send ``chunk`` to worker ``i`` (with the references it lacks); the job id, or None
        when the worker is gone (the chunk is then evaluated in-process)."""
        try:
            w = self._worker(i)
        except Exception as exc:  # noqa: BLE001 -- cannot start a process: in-process
            log.warning("evaluation worker did not start worker=%d error=%s", i, _describe(exc))
            return None
        new: dict[int, Reference] = {}
        wire = []
        for item in chunk:
            ref = item.ctx.reference
            token = None
            if ref is not None:
                token = self._token(ref)
                if token not in w.refs:
                    new[token] = ref
            wire.append((item.name, item.blob, item.state if item.blob is None else None,
                         replace(item.ctx, reference=None), token))
        live = {t for _, t in self._live.values()} | set(new)
        drop = sorted(w.refs - live)
        job = next(self._jobs)
        try:
            w.conn.send((job, new, drop, wire))
        except (OSError, ValueError, pickle.PicklingError) as exc:
            self._failed(i, len(chunk), exc)
            return None
        w.refs = (w.refs | set(new)) - set(drop)
        return job

    def _receive(self, i: int, job: int, check: Callable[[str], None] | None) -> Any:
        """Worker ``i``'s answer to ``job``: its findings, None when it is lost or raised (the
        chunk is evaluated in-process), or -- without ``check``: do not wait -- ``_PENDING``."""
        w = self._procs[i]
        if w is None:
            return None
        while True:
            try:
                ready = w.conn.poll(self.poll_s if check is not None else 0)
            except (OSError, EOFError) as exc:
                self._failed(i, None, exc)
                return None
            if not ready:
                if not w.process.is_alive():
                    self._failed(i, None, RuntimeError(f"exit code {w.process.exitcode}"))
                    return None
                if check is None:
                    return _PENDING
                check("evaluate")  # abandoning: the worker's late answer is dropped
                continue
            try:
                got, ok, result = w.conn.recv()
            except (OSError, EOFError) as exc:
                self._failed(i, None, exc)
                return None
            if got != job:
                continue  # the answer to an abandoned job
            if not ok:
                log.warning("evaluation worker raised, evaluating in-process worker=%d error=%s",
                            i, result)
                return None
            return result

    def _failed(self, i: int, n: int | None, exc: BaseException) -> None:
        w = self._procs[i]
        code = w.process.exitcode if w is not None else None
        log.warning("evaluation worker lost, evaluating in-process worker=%d exitcode=%s "
                    "error=%s", i, code, _describe(exc))
        self._lost(i)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}:{str(exc)[:200]!r}"


def _evaluate(det: Detector, item: EvalItem, ctx: EvalContext) -> list[Finding]:
    state = det.loads(unpack(item.blob)) if item.blob is not None else item.state
    return list(det.evaluate(state, ctx))


def _serve(conn: Connection, blob: bytes) -> None:
    """A worker: evaluate the chunks it is sent until told to stop or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    by_name = {d.name: d for d in pickle.loads(blob)}
    refs: dict[int, Reference] = {}
    # one BLAS/OpenMP thread, as in the checkpoint (monitor.core.checkpoint, step 6)
    with threadpool_limits(limits=1):
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return
            if msg is None:
                return
            job, new, drop, wire = msg
            refs.update(new)
            try:
                out = []
                for name, data, state, ctx, token in wire:
                    if token is not None:
                        ctx = replace(ctx, reference=refs[token])
                    out.append(_evaluate(by_name[name], EvalItem(name, data, state, ctx), ctx))
                reply: tuple[int, bool, Any] = (job, True, out)
            except Exception as exc:  # noqa: BLE001 -- reported; the parent evaluates in-process
                reply = (job, False, _describe(exc))
            for token in drop:
                refs.pop(token, None)
            try:
                conn.send(reply)
            except (OSError, ValueError):
                return
