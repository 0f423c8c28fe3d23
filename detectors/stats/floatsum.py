"""``numpy.sum`` of a short 1-d float64 array, on a Python list, in numpy's order of additions.

Statistics that evaluate a short series many times (Pelz-Good's terms, a saddlepoint's
cumulants over ~17 weights, inside root searches) are several times faster on Python floats
than as numpy calls on tiny arrays; adding in numpy's order keeps their results equal to the
array code's bit for bit, so moving them off numpy changes no reported number.
"""

from __future__ import annotations

from collections.abc import Sequence


def numpy_sum(terms: Sequence[float]) -> float:
    """``float(np.sum(np.array(terms)))``: numpy's pairwise loop, which below 8 terms adds left
    to right from 0.0, up to 128 keeps 8 running sums (terms ``j``, ``j + 8``, ...), combines
    them pairwise and then adds the remainder left to right, and above 128 adds the sums of two
    halves (the first a multiple of 8 long).

    >>> import numpy as np
    >>> xs = [0.1 * k ** 1.5 for k in range(1, 24)]
    >>> numpy_sum(xs) == float(np.sum(np.array(xs))), numpy_sum([])
    (True, 0.0)
    """
    n = len(terms)
    if n < 8:
        total = 0.0
        for v in terms:
            total += v
        return total
    if n > 128:
        half = n // 2 - (n // 2) % 8
        return numpy_sum(terms[:half]) + numpy_sum(terms[half:])
    acc = list(terms[:8])
    i = 8
    while i + 8 <= n:
        for j in range(8):
            acc[j] += terms[i + j]
        i += 8
    total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
    for v in terms[i:]:
        total += v
    return total
