"""Prediction decoding in a worker process, beside the consume loop (``kafka.decode_workers``).

The consumer is GIL-bound: its main thread's decode (orjson, validation, base64 embeddings:
~10-16 us an event) holds the GIL the checkpoint thread -- the critical path -- waits for. With
a decode worker the main thread hands each poll's prediction records to another process
(``CHUNK`` records a request, ``DEPTH`` in flight) and goes on polling (heartbeats, rebalances,
the next fetch) while it decodes; each answer is added, in order, to the buffer filling when it
is taken, with the offsets its records cover (``monitor.core.read_buffer``), so a checkpoint
takes the buffer as decoded so far and the rest lands in the next. What stays on the GIL is
~3 us an event (``bench/decode.py``).

Transport: a pipe carries only small control messages. The records travel as columns in a
shared-memory segment (values one after another, their lengths, partitions, offsets, keys; not
pickled records) and the :class:`~monitor.core.ingest.decode.PredictionDecode` comes back in
another, pickled with its numpy arrays out of band: a request is ~12 MB, and a pipe moves it in
64 kB to 4 MB writes, each of which drops the GIL and may wait up to the switch interval (5 ms)
to get it back. Segments grow when a request does not fit; whoever creates one unlinks it.
The gate (what the intake has admitted and decided,
:meth:`~monitor.core.ingest.intake.Intake.snapshot`) goes with each request, as the in-process
decode would read it then.

The worker also runs the detectors' per-row observe work ahead
(:class:`~monitor.contract.Precomputable`: ``embedding_drift`` projects every embedding on its
reference's axes, ~45 % of observing's CPU in ``bench/observe.py``), off the consumer's GIL: the
consumer passes the functions of the references its last checkpoint used (:class:`Precomputes`),
sent again only when they change, and the worker adds each function's rows to every batch of one
model version it has functions for. A batch whose reference changed meanwhile carries rows under
another key, which the detector does not use: it computes them itself.

``workers`` processes (1 by default; up to 4), start method ``spawn`` (the consumer has threads
and librdkafka, never a plain fork). Requests go to them in turn (slot ``i`` to worker ``i mod
workers``) and answers are taken in the order sent, each from its worker's pipe, so the stream's
order is the buffer's with any number of workers. A worker ignores SIGINT and SIGTERM (a stop is
the parent's to run: the last poll is still decoded), and exits when the parent closes the pipe
or is gone. A worker that dies or raises is :class:`DecodeWorkerLost`: the consumer stops with
that error (nothing committed is lost; a restart reads the buffer again), it never waits on a
dead process.
"""

from __future__ import annotations

import logging
import multiprocessing
import operator
import pickle
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from monitor.core.ingest.decode import PredictionDecode, decode_predictions
from monitor.core.ingest.records import Record
from monitor.errors import VitmonError

log = logging.getLogger(__name__)

#: seconds between two liveness checks of the worker while waiting for its answer
POLL_S = 0.05
#: Records per request: a 20,000-record poll of 2.5 kB events goes in 4 requests of ~12 MB, so
#: the worker's working set and the segments (counted in both processes' RSS) stay small.
CHUNK = 5_000
#: Requests in flight per worker: a worker decodes one while this process writes the next (one
#: segment pair per slot; a slot is reused only once its answer was read).
DEPTH = 2
_MIN_SEGMENT = 1 << 20
_VALUE, _PARTITION, _OFFSET, _KEY = map(operator.attrgetter, ("value", "partition", "offset", "key"))


class DecodeWorkerLost(VitmonError):
    """The decode worker died or failed: the consume loop cannot go on without its answer."""


class Gate:
    """:class:`~monitor.core.ingest.decode.DimensionGate` over a snapshot of the intake's:
    (model, version) -> D (0: undecided) for every admitted version; None for the others."""

    def __init__(self, expected: Mapping[tuple[str, str], int]) -> None:
        self._expected = expected

    def expected(self, model: str, version: str) -> int | None:
        return self._expected.get((model, version))


#: (model, version) -> the precomputes to run on its batches: (``Batch.extras`` name, function)
Precomputes = Mapping[tuple[str, str], Sequence[tuple[str, Callable[[Any], Any]]]]


def precompute(out: PredictionDecode, fns: Precomputes) -> None:
    """Add the precomputed rows to ``out``'s batches of one model version with functions. A
    function that raises adds nothing: observe then computes the rows itself, and a plugin's
    error shows there, in the checkpoint, not as a lost decode worker."""
    for name, batch in out.batches.items():
        versions = np.unique(batch.model_version.astype(str)) if len(batch) else ()
        todo = fns.get((str(batch.model[0]), str(versions[0]))) if len(versions) == 1 else ()
        rows = {}
        for column, fn in todo or ():
            try:
                rows[column] = fn(batch)
            except Exception as exc:  # noqa: BLE001 -- left to observe (above)
                log.warning("precompute failed column=%s error=%s", column, type(exc).__name__)
        if any(r is not None for r in rows.values()):
            out.batches[name] = replace(batch, extras={**batch.extras, **{
                column: r for column, r in rows.items() if r is not None}})


class _Segment:
    """A shared-memory segment this process created (``own``) or attached to."""

    def __init__(self, size: int = 0, name: str | None = None) -> None:
        self.shm = shared_memory.SharedMemory(name=name, create=name is None,
                                              size=max(size, _MIN_SEGMENT) if name is None else 0)
        self.own = name is None

    @property
    def name(self) -> str:
        return self.shm.name

    @property
    def size(self) -> int:
        return self.shm.size

    def close(self) -> None:
        try:
            self.shm.close()
        except BufferError:  # a view still exported: the mapping goes with the process
            pass
        if self.own:
            try:
                self.shm.unlink()
            except FileNotFoundError:
                pass


def _fit(seg: _Segment | None, need: int) -> tuple[_Segment, bool]:
    """``seg`` if ``need`` bytes fit, else a new segment twice as large (the old one unlinked);
    True when it is new."""
    if seg is not None and seg.size >= need:
        return seg, False
    if seg is not None:
        seg.close()
    return _Segment(max(need, 2 * seg.size if seg is not None else 0)), True


def _write(seg: _Segment, parts: Sequence[Any]) -> list[int]:
    """Copy ``parts`` (bytes-like) one after another into ``seg``; their lengths."""
    lens, at, buf = [], 0, seg.shm.buf
    for p in parts:
        m = memoryview(p).cast("B")
        buf[at:at + m.nbytes] = m
        at += m.nbytes
        lens.append(m.nbytes)
        m.release()
    return lens


def _read(seg: _Segment, lens: Sequence[int]) -> list[bytearray]:
    """The parts :func:`_write` wrote, copied out (writable: numpy arrays rebuilt on them)."""
    out, at, buf = [], 0, seg.shm.buf
    for n in lens:
        out.append(bytearray(buf[at:at + n]))
        at += n
    return out


class DecodePool:
    """``workers`` decode processes; 0: :meth:`decode` runs in this process."""

    def __init__(self, workers: int, poll_s: float = POLL_S, chunk: int = CHUNK) -> None:
        self.workers = workers
        self.poll_s = poll_s
        self.chunk = chunk
        self.depth = DEPTH * max(workers, 1)  # slots; slot i is worker i % workers's
        self._procs: list[Any] = []  # multiprocessing.process.BaseProcess, one per worker
        self._conns: list[Connection] = []
        self._ins: list[_Segment | None] = [None] * self.depth
        self._outs: list[_Segment | None] = [None] * self.depth
        self._slots: deque[int] = deque()  # requests in flight, oldest first
        self._next = 0
        #: each worker's precomputes (names only: what was sent)
        self._sent: list[dict[tuple[str, str], tuple[str, ...]]] = [{} for _ in range(workers)]

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self.workers <= 0 or self._procs:
            return
        ctx = multiprocessing.get_context("spawn")
        for i in range(self.workers):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(theirs, self.depth), daemon=True,
                               name=f"vitmon-decode-{i}")
            proc.start()
            theirs.close()
            self._procs.append(proc)
            self._conns.append(mine)

    def close(self) -> None:
        """Stop the workers (mid-decode too) and free the segments; no process is left."""
        procs, conns, self._procs, self._conns = self._procs, self._conns, [], []
        self._slots.clear()
        for conn in conns:
            try:
                conn.send(None)
            except OSError:
                pass
            conn.close()
        for proc in procs:
            proc.join(0.5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for seg in (*self._ins, *self._outs):
            if seg is not None:
                seg.close()
        self._ins, self._outs = [None] * self.depth, [None] * self.depth
        self._sent = [{} for _ in range(self.workers)]

    def pids(self) -> list[int]:
        """The running workers' process ids (tests, the bench)."""
        return [p.pid for p in self._procs if p.pid]

    @property
    def pending(self) -> int:
        """Requests sent whose answers were not taken yet."""
        return len(self._slots)

    @property
    def full(self) -> bool:
        """No request can be sent before the oldest answer is taken."""
        return len(self._slots) >= self.depth

    def ready(self) -> bool:
        """The oldest request's answer is in, or its worker is gone (:meth:`result` says so):
        taking it would not wait."""
        if not self._slots:
            return False
        try:
            return self._conns[self._slots[0] % self.workers].poll(0)
        except (OSError, EOFError):
            return True

    # -- decoding ------------------------------------------------------------------------------
    def submit(self, records: Sequence[Record], gate: Mapping[tuple[str, str], int],
               precomputes: Precomputes | None = None) -> None:
        """Send ``records`` (one topic's) to the next worker; :meth:`result` takes the answers
        in order. Not when :attr:`full`. ``precomputes`` replace the worker's when they differ."""
        assert self._conns and not self.full
        slot, self._next = self._next, (self._next + 1) % self.depth
        worker = slot % self.workers
        n = len(records)
        values = list(map(_VALUE, records))
        signed = None  # a tombstone is rejected as ``empty`` like b"": length -1 keeps it apart
        if None in values:
            signed = np.array([-1 if v is None else len(v) for v in values], np.int64)
            values = [v or b"" for v in values]
        lens = np.fromiter(map(len, values), np.int64, n)
        cols = pickle.dumps((records[0].topic if records else "", lens if signed is None else signed,
                             np.fromiter(map(_PARTITION, records), np.int32, n),
                             np.fromiter(map(_OFFSET, records), np.int64, n),
                             list(map(_KEY, records))), protocol=5)
        ends = np.cumsum(lens).tolist()
        blob_n = ends[-1] if ends else 0
        seg, new = _fit(self._ins[slot], len(cols) + blob_n)
        self._ins[slot] = seg
        buf = seg.shm.buf
        buf[:len(cols)] = cols
        # value by value into the segment: no 50 MB b"".join (a fresh allocation's page
        # faults cost more than the copy)
        at = len(cols)
        for v, end in zip(values, ends):
            buf[at:len(cols) + end] = v
            at = len(cols) + end
        del buf
        sizes = [len(cols), blob_n]
        fns = None
        names = {k: tuple(c for c, _ in v) for k, v in (precomputes or {}).items()}
        if names != self._sent[worker]:  # a ~100 kB basis goes once, not with every request
            fns = {k: list(v) for k, v in (precomputes or {}).items()}
            self._sent[worker] = names
            log.info("decode worker precomputes worker=%d versions=%d columns=%d", worker,
                     len(names), sum(map(len, names.values())))
        try:
            self._conns[worker].send((slot, seg.name if new else None, sizes, dict(gate), fns))
        except (OSError, ValueError) as exc:
            raise self._lost(worker, exc) from None
        self._slots.append(slot)

    def result(self, check: Callable[[], None] | None = None) -> PredictionDecode:
        """The oldest request's answer; ``check`` is called while waiting (health beats)."""
        assert self._conns and self._slots
        slot = self._slots.popleft()
        worker = slot % self.workers
        conn = self._conns[worker]
        while True:
            try:
                if conn.poll(self.poll_s):
                    msg = conn.recv()
                    break
            except (OSError, EOFError) as exc:
                raise self._lost(worker, exc) from None
            if not self._procs[worker].is_alive():
                raise self._lost(worker, None)
            if check is not None:
                check()
        ok, name, lens = msg
        if not ok:
            raise DecodeWorkerLost(f"decode worker raised: {name}")
        seg = self._outs[slot]
        if name is not None:
            if seg is not None:
                seg.close()
            seg = self._outs[slot] = _Segment(name=name)
        assert seg is not None
        stream, *buffers = _read(seg, lens)
        return pickle.loads(stream, buffers=buffers)

    def _lost(self, worker: int, exc: BaseException | None) -> DecodeWorkerLost:
        code = self._procs[worker].exitcode if worker < len(self._procs) else None
        detail = f"exit code {code}" if exc is None else f"{type(exc).__name__}: {exc}"
        log.error("decode worker lost exitcode=%s error=%s", code, detail)
        return DecodeWorkerLost(f"the decode worker is gone ({detail})")


def _records(seg: _Segment, sizes: Sequence[int]) -> list[Record]:
    cols_n, blob_n = sizes
    topic, lens, parts, offsets, keys = pickle.loads(seg.shm.buf[:cols_n])
    blob = seg.shm.buf[cols_n:cols_n + blob_n]
    ends = np.cumsum(np.maximum(lens, 0)).tolist()
    starts = [0, *ends[:-1]]
    # one copy, value by value (the decoder keeps bytes: rejections and parked events)
    values = [None if n < 0 else blob[a:b].tobytes()
              for n, a, b in zip(lens.tolist(), starts, ends)]
    blob.release()
    return [Record(topic, p, o, k, v, -1)
            for p, o, k, v in zip(parts.tolist(), offsets.tolist(), keys, values)]


def _request(conn: Connection) -> Any:
    """The next request; None once told to stop or when the parent is gone."""
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None


def _serve(conn: Connection, slots: int) -> None:
    """The worker: decode what it is sent until told to stop or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C and SIGTERM are the parent's
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # One BLAS thread: the projections are narrow (768 x 16), where a second thread spins on the
    # core the consumer needs.
    with threadpool_limits(limits=1, user_api="blas"):
        _loop(conn, slots)


def _loop(conn: Connection, slots: int) -> None:
    seg_in: list[_Segment | None] = [None] * slots  # by slot: this worker's are every n-th
    seg_out: list[_Segment | None] = [None] * slots
    fns: Precomputes = {}
    try:
        for slot, name, sizes, gate, new_fns in iter(lambda: _request(conn), None):
            if new_fns is not None:
                fns = new_fns
            if name is not None:
                if seg_in[slot] is not None:
                    seg_in[slot].close()
                seg_in[slot] = _Segment(name=name)
            try:
                out = decode_predictions(_records(seg_in[slot], sizes), {}, gate=Gate(gate))
                precompute(out, fns)
                buffers: list[pickle.PickleBuffer] = []
                stream = pickle.dumps(out, protocol=5, buffer_callback=buffers.append)
                del out
                raws = [stream, *(b.raw() for b in buffers)]
                seg, new = _fit(seg_out[slot], sum(r.nbytes if isinstance(r, memoryview)
                                                   else len(r) for r in raws))
                seg_out[slot] = seg
                reply: tuple[bool, Any, Any] = (True, seg.name if new else None, _write(seg, raws))
                del raws, buffers
            except Exception as exc:  # noqa: BLE001 -- reported; the parent stops with it
                reply = (False, f"{type(exc).__name__}: {str(exc)[:200]}", None)
            try:
                conn.send(reply)
            except (OSError, ValueError):
                return
    finally:
        for s in (*seg_in, *seg_out):
            if s is not None:
                s.close()
