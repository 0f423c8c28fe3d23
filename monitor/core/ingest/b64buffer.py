"""One decode call's embedding bytes, back to back in one buffer (``decode_predictions``' hot
path): base64 text decoded a few dozen events per call, raw bytes copied in; rows read out of
it as float16 and checked for NaN/Inf.

Decoding each event's text on its own (a 2 kB string to a 1.5 kB ``bytes`` kept until the
batch joins them) cost ~3x the base64 work itself; joining the whole poll's text first cost as
much again (a 40 MB string and its 30 MB decoding in fresh memory, beyond the caches). Runs of
:data:`CHUNK` texts stay in cache, their text dies young, and the buffer is the batch's
embedding matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

#: Texts per decode call (64 x 2 kB: in L2).
CHUNK = 64


class Base64Buffer:
    """Reserve an offset per embedding: :meth:`add` for base64 text (decoded later, in runs),
    :meth:`put` for raw bytes (copied now); :meth:`finish` gives the buffer.

    Only unpadded text whose length is a multiple of 4 may be added: a run's joined text then
    decodes to its parts' decodings back to back exactly when every part is valid (``=`` or
    any other invalid character stays invalid inside the join), and a run that fails is
    decoded again text by text. ``errors``: offset -> the exception ``decode`` raised for a
    text that is not valid base64 (its bytes are zeros).

    >>> import base64
    >>> buf = Base64Buffer(3, lambda text: base64.b64decode(text, validate=True))
    >>> buf.add("AAEC"), buf.put(b"xy"), buf.add("AwQF"), buf.add("A*=A")
    (0, 3, 5, 8)
    >>> bytes(buf.finish()), list(buf.errors)
    (b'\\x00\\x01\\x02xy\\x03\\x04\\x05\\x00\\x00\\x00', [8])
    >>> buf.add_run(["AAEC", "A*=A", "AwQF"], 4), bytes(buf.finish()[11:]), list(buf.errors)
    (range(11, 20, 3), b'\\x00\\x01\\x02\\x00\\x00\\x00\\x03\\x04\\x05', [8, 14])
    """

    __slots__ = ("_n", "_decode", "_buf", "_view", "_pos", "_texts", "_start", "errors")

    def __init__(self, n: int, decode: Callable[[str], bytes]) -> None:
        self._n = max(n, 1)  # events: the first reservation allocates for n of its size
        self._decode = decode
        self._buf = np.empty(0, dtype=np.uint8)
        self._view = memoryview(self._buf)
        self._pos = 0
        self._texts: list[str] = []
        self._start = 0  # offset of the first pending text
        self.errors: dict[int, ValueError] = {}

    def add(self, text: str) -> int:
        off = self._pos
        end = off + len(text) // 4 * 3
        if end > len(self._buf):
            self._grow(end, end - off)
        self._pos = end
        texts = self._texts
        if not texts:
            self._start = off
        texts.append(text)
        if len(texts) == CHUNK:
            self._flush()
        return off

    def add_run(self, texts: Sequence[str], length: int) -> range:
        """:meth:`add` of each of ``texts``, all ``length`` characters long (a multiple of 4),
        without a Python call per text (the fast path's chunks): the same offsets, bytes and
        errors."""
        step = length // 4 * 3
        first = self._pos
        end = first + step * len(texts)
        if end > len(self._buf):
            self._grow(end, step)
        pending, i = self._texts, 0
        while i < len(texts):
            if not pending:
                self._start = self._pos
            run = texts[i:i + CHUNK - len(pending)]
            pending += run
            i += len(run)
            self._pos += step * len(run)
            if len(pending) == CHUNK:
                self._flush()
        return range(first, end, step)

    def put(self, raw: bytes) -> int:
        self._flush()  # pending text stays one contiguous run
        off = self._pos
        end = off + len(raw)
        if end > len(self._buf):
            self._grow(end, len(raw))
        self._view[off:end] = raw
        self._pos = end
        return off

    def finish(self) -> np.ndarray:
        """The bytes reserved so far (uint8; a view of the buffer)."""
        self._flush()
        return self._buf[:self._pos]

    def _grow(self, end: int, each: int) -> None:
        """Room up to ``end``; the first time for ``n`` events of ``each`` bytes."""
        cap = max(end, 2 * len(self._buf), self._n * each)
        buf = np.empty(cap, dtype=np.uint8)
        buf[:self._pos] = self._buf[:self._pos]
        self._buf, self._view = buf, memoryview(buf)

    def _flush(self) -> None:
        texts = self._texts
        if not texts:
            return
        start, end = self._start, self._pos
        try:
            raw = self._decode("".join(texts))
        except ValueError:  # binascii.Error is one
            raw = b""
        if len(raw) == end - start:
            self._view[start:end] = raw
        else:
            for text in texts:
                size = len(text) // 4 * 3
                try:
                    self._view[start:start + size] = self._decode(text)
                except ValueError as exc:
                    self.errors[start] = exc
                    self._buf[start:start + size] = 0
                start += size
        texts.clear()


def f16_rows(buf: np.ndarray, offsets: Sequence[int], dim: int) -> np.ndarray:
    """[N, D] float16 of rows at byte ``offsets`` in ``buf``: a view when they are back to back
    (one model's poll), else gathered."""
    rows = np.array(offsets, dtype=np.int64) // 2
    n = len(rows)
    if rows[-1] - rows[0] == (n - 1) * dim and (n < 3 or (np.diff(rows) == dim).all()):
        return buf[2 * rows[0]:2 * (rows[0] + n * dim)].view("<f2").reshape(n, dim)
    return buf[:len(buf) // 2 * 2].view("<f2")[rows[:, None] + np.arange(dim)]


def finite_rows(emb: np.ndarray) -> np.ndarray:
    """Per row of [N, D]: no NaN or Infinity. float16 by its exponent bits (5x numpy's
    isfinite for half floats), 256 rows at a time (a poll-sized temporary is fresh memory)."""
    if emb.dtype != np.float16:
        return np.isfinite(emb).all(axis=1)
    bits = emb.view(np.uint16)
    out = np.empty(len(bits), dtype=bool)
    tmp = np.empty((min(len(bits), 256), bits.shape[1]), dtype=np.uint16)
    for lo in range(0, len(bits), 256):
        part = np.bitwise_and(bits[lo:lo + 256], 0x7C00, out=tmp[:len(bits) - lo])
        np.not_equal(part.max(axis=1), 0x7C00, out=out[lo:lo + 256])
    return out
