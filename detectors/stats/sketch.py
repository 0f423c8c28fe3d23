"""A kilobyte embedding sketch: features on the reference's principal axes, summed exactly.

Each embedding ``x`` [d] becomes ``p = q + 1`` features (embedding_drift's default q = 16: 17):

* ``z``: its coordinates on the reference's first ``q`` principal axes, whitened by the
  reference's variance along each axis (a shift of one reference SD on an axis is 1);
* ``log rms residual``: the log root-mean-square of what those axes leave out, so a change
  orthogonal to the reference's principal subspace (noise, a new direction) moves a feature.

(v2 also kept cos/sin of 4 random Fourier frequencies of ``z``; measured on bench/drift.py they
added no power on any of its shifts and diluted the mean test, so v3 dropped them.)

A window keeps ``n``, the sum of the features and the sum of their outer products, all in
fixed point (int64, :data:`SCALE` = 2^10 per unit): adding two windows' sums is exact, so merge
is addition, associative and order-independent to the last bit. Features are clipped to
+-:data:`CLIP` before quantising, which keeps one event's products below 2^37 and the sums far
from overflow (2^26 events at the clip, ~10^12 at typical sizes).

Pure numpy; the test of a window against the reference is :mod:`detectors.stats.subspace`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.stats.embeddings import event_hashes

SCALE = 1024.0  # fixed-point units per feature unit (resolution ~1e-3 SD)
CLIP = 128.0  # |feature| bound before quantising, in feature units


@dataclass(frozen=True, slots=True)
class Basis:
    """What observing needs from the reference: its mean and principal axes."""

    mean: np.ndarray  # float64 [d]
    axes: np.ndarray  # float64 [d, q], scaled by 1/sd so projections come out whitened
    variance: np.ndarray  # float64 [q], the reference's variance along each axis
    fingerprint: int  # identifies (reference, q, sketch format); other ones' sums never add
    inv_len2: np.ndarray  # float64 [q], 1 / |axis_j|^2 = sd_j^2 (see _features), once per basis

    @property
    def n_features(self) -> int:
        return self.axes.shape[1] + 1


def make_basis(pca_mean: np.ndarray, components: np.ndarray, variance: np.ndarray, q: int,
               identity: str) -> Basis:
    """A :class:`Basis` on the first ``q`` axes; ``identity`` names the reference (its id)."""
    q = int(min(q, components.shape[1]))
    var = np.maximum(np.asarray(variance[:q], np.float64), 1e-12)
    axes = np.asarray(components, np.float64)[:, :q] / np.sqrt(var)
    text = f"{identity}|q={q}|v3|d={axes.shape[0]}".encode()
    fp = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1
    return Basis(np.asarray(pca_mean, np.float64), axes, var, fp,
                 1.0 / np.square(axes).sum(0))


def features(x: np.ndarray, basis: Basis, rows: np.ndarray | None = None) -> np.ndarray:
    """float64 [n, p] sketch features of embeddings ``x`` [n, d] (see module docstring), or of
    ``x[rows]``, in chunks of :data:`CHUNK` rows (cache-sized: half the time of one pass over a
    large batch; the rows are gathered chunk by chunk, not copied out whole first), each
    written into its rows of the result (no concatenation of the chunks)."""
    n = len(x) if rows is None else len(rows)
    out = np.empty((n, basis.n_features))
    for i in range(0, n, CHUNK):
        _features(x[i:i + CHUNK] if rows is None else x[rows[i:i + CHUNK]], basis,
                  out[i:i + CHUNK])
    return out


CHUNK = 256  # 3 % less CPU than 512 (order-balanced interleaved blocks); 128 ties 512


def _features(x: np.ndarray, basis: Basis, out: np.ndarray) -> None:
    # float64: a row's features must not depend on the batch it came in (BLAS kernels round
    # float32 differently by shape), so that observe(a + b) == merge(observe(a), observe(b)).
    centred = _centred(x, basis.mean)
    q = basis.axes.shape[1]
    z = np.matmul(centred, basis.axes, out=out[:, :q])
    # What the q axes leave out: |x - mean|^2 minus the energy on the (unwhitened) axes,
    # whose squared lengths are 1/sd^2 (so z_j^2 / |axis_j|^2 = (x - mean).v_j squared).
    resid = np.maximum(np.einsum("nd,nd->n", centred, centred) - (z * z) @ basis.inv_len2, 0.0)
    out[:, q] = 0.5 * np.log(resid / centred.shape[1] + 1e-12)


def _centred(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """float64 ``x - mean``. Float16 rows are converted through their bits (exact, so the same
    values); others are cast inside the subtraction (the same float64 values as a cast first,
    without np.asarray's slow whole-chunk conversion and its temporary)."""
    f = _float16_as_float32(x) if x.dtype == np.float16 else None
    if f is None:
        return np.subtract(x, mean, dtype=np.float64)
    out = f.astype(np.float64)
    out -= mean
    return out


def _float16_as_float32(x: np.ndarray) -> np.ndarray | None:
    """Float16 ``x`` as float32, exactly, by integer arithmetic on the codes; None when ``x``
    holds an inf or a NaN, or when the FPU treats subnormal inputs as zero (DAZ).

    numpy converts float16 element by element (~1.3 ns each): four vectorised passes over
    int32/float32 cost ~30 % less (bench/observe.py's 768-d rows). The sign-extended code
    shifted left by 13 puts the sign at bit 31 and the 5-bit exponent and 10-bit mantissa at
    bits 23-27 and 13-22; the mask clears the copies of the sign between. Read as float32 that
    is the float16 value times 2^-112, for a subnormal code too (a float32 subnormal), and the
    exact product by 2^112 restores it. An inf/NaN code (exponent 31) comes out >= 2^16 and
    sends the chunk to numpy's own conversion."""
    if (_SUBNORMAL_PROBE * _REBIAS)[0] != 2.0**-24:  # DAZ: subnormal codes would read as 0
        return None
    t = x.view(np.int16).astype(np.int32)
    t <<= 13
    t &= _SIGN_EXPONENT_MANTISSA
    f = t.view(np.float32)
    f *= _REBIAS
    if f.size and (f.max() >= 65536.0 or f.min() <= -65536.0):
        return None
    return f


_SIGN_EXPONENT_MANTISSA = np.array(0x8FFFE000, np.uint32).view(np.int32)[()]
_REBIAS = np.float32(2.0**112)  # float32 exponent bias 127 minus float16's 15
_SUBNORMAL_PROBE = np.array([1 << 13], np.int32).view(np.float32)  # float16 code 1, shifted


def quantise(f: np.ndarray) -> np.ndarray:
    """Fixed-point int64 of features (clipped to +-CLIP)."""
    # In place on the clipped copy: the same values without two more float64 temporaries.
    c = np.clip(f, -CLIP, CLIP)
    c *= SCALE
    return np.rint(c, out=c).astype(np.int64)


def triu(p: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(p)


def sums(fq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact integer sums of quantised features [n, p]: ``(sum [p], outer-product sum [p(p+1)/2])``
    (upper triangle, row-major)."""
    iu, ju = triu(fq.shape[1])
    # Exact in int64: entries < 2^17 so each product < 2^34; einsum over rows stays integral.
    outer = np.einsum("ni,nj->ij", fq, fq)
    return fq.sum(0), outer[iu, ju]


def group_sums(fq: np.ndarray, rows: np.ndarray,
               starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sums` of many groups at once: group ``g`` is ``fq[rows[starts[g]:starts[g+1]]]``
    (``monitor.contract.group_offsets``); returns ``(sums [G, p], outer sums [G, p(p+1)/2])``,
    row ``g`` equal to ``sums(fq[that group])``.

    The outer products go through float64 BLAS: every entry is an integer below 2^17, each
    product below 2^34, so any partial sum of up to 2^19 rows is an integer below 2^53 and
    exact in float64, whatever order the kernel adds in (larger groups use :func:`sums`)."""
    p = fq.shape[1]
    iu, ju = triu(p)
    totals = np.zeros((len(starts), p), np.int64)
    outers = np.zeros((len(starts), len(iu)), np.int64)
    # A column of ones: each group's Gram matrix then holds its sums in its last row (exact
    # like the products), so no separate gather and reduceat of the integer rows.
    ff = np.empty((fq.shape[0], p + 1))
    ff[:, :p] = fq
    ff[:, p] = 1.0
    ends = np.r_[starts[1:], len(rows)].astype(np.int64)
    for g, (lo, hi) in enumerate(zip(starts.tolist(), ends.tolist())):
        if hi - lo > _EXACT_ROWS:
            totals[g], outers[g] = sums(fq[rows[lo:hi]])
            continue
        part = ff[rows[lo:hi]]
        gram = part.T @ part
        totals[g] = gram[p, :p]
        outers[g] = gram[iu, ju]
    return totals, outers


_EXACT_ROWS = 1 << 19  # rows whose float64 product sums stay exact (see group_sums)


def moments(n: int, total: np.ndarray, outer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [p] and unbiased covariance [p, p] (in feature units) from the fixed-point sums."""
    p = total.size
    iu, ju = triu(p)
    s2 = np.zeros((p, p))
    s2[iu, ju] = outer.astype(np.float64)
    s2 = s2 + np.triu(s2, 1).T
    mean = total.astype(np.float64) / (n * SCALE)
    cov = (s2 / SCALE**2 - n * np.outer(mean, mean)) / max(n - 1, 1)
    return mean, cov


@dataclass(frozen=True, eq=False)
class Projection:
    """``embedding_drift``'s per-row observe work on one basis, which the core may run ahead in
    its decode worker (``monitor.contract.Precomputable``): int64 ``[n, p + 1]``, every row's
    :func:`quantise`-d features then its id's hash (:func:`~detectors.stats.embeddings.
    event_hashes`, as int64 bits). ``key`` digests the basis itself (its fingerprint names only
    the reference), so rows projected on another basis are never taken for these."""

    basis: Basis
    key: str

    @classmethod
    def of(cls, basis: Basis) -> Projection:
        digest = hashlib.blake2b(digest_size=12)
        for a in (basis.mean, basis.axes, basis.inv_len2):
            digest.update(np.ascontiguousarray(a, np.float64).tobytes())
        return cls(basis, f"{basis.fingerprint:x}.{digest.hexdigest()}")

    def __call__(self, batch: Any) -> np.ndarray | None:
        """Of a ``monitor.contract.Batch`` (None for embeddings of another dimension)."""
        x = batch.embedding
        if x.shape[1] != self.basis.mean.size:
            return None
        p = self.basis.n_features
        out = np.empty((len(x), p + 1), np.int64)
        out[:, :p] = quantise(features(x, self.basis))
        out[:, p] = event_hashes(np.asarray(batch.event_id, dtype=object)).view(np.int64)
        return out
