"""A checkpoint's batches joined into fewer, larger ones before it slices and observes them.

Observing costs a fixed part per batch -- every detector folds each (window, slice) group of a
batch with a Python step, and a batch of 5,000 events of ``bench/ingest.py`` holds nearly as
many groups (26 slices x its windows) as one of 60,000 -- so a checkpoint of the decode worker's
5,000-record answers (``monitor.core.decode_pool``) cost ~25 % more observe CPU than one batch
(``bench/observe.py --events 60000 --poll 5000`` vs ``--poll 60000``: 1.230 vs 0.983 CPU s).
Consecutive batches of one model whose columns agree (the same attribute, image and extra
names, embedding and probs widths and dtypes) are concatenated in stream order; the states are
the same (observing is a fold: ``merge`` is associative) and a repeated event id
across them is still counted once (now inside one batch: ``_first_occurrences``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from monitor.contract import Batch

_ARRAYS = tuple(f.name for f in dataclasses.fields(Batch)
                if f.name not in ("image", "attrs", "extras"))


def coalesce(batches: Sequence[Batch], max_rows: int = 100_000) -> list[Batch]:
    """``batches`` with each run of consecutive compatible ones (up to ``max_rows`` rows)
    concatenated, in order."""
    out: list[Batch] = []
    run: list[Batch] = []
    for batch in batches:
        if run and (not _compatible(run[0], batch)
                    or sum(map(len, run)) + len(batch) > max_rows):
            out.append(_concat(run))
            run = []
        run.append(batch)
    if run:
        out.append(_concat(run))
    return out


def _shape(batch: Batch) -> tuple:
    return (tuple(sorted(batch.image)), tuple(sorted(batch.attrs)), tuple(sorted(batch.extras)),
            tuple((a.dtype.str, a.shape[1:]) for a in (getattr(batch, n) for n in _ARRAYS)))


def _compatible(a: Batch, b: Batch) -> bool:
    return len(a) > 0 and len(b) > 0 and a.model[0] == b.model[0] and _shape(a) == _shape(b)


def _concat(run: list[Batch]) -> Batch:
    if len(run) == 1:
        return run[0]
    first = run[0]
    return Batch(**{n: np.concatenate([getattr(b, n) for b in run]) for n in _ARRAYS},
                 **{m: {k: np.concatenate([getattr(b, m)[k] for b in run])
                        for k in getattr(first, m)} for m in ("image", "attrs", "extras")})
