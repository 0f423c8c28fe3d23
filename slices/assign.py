"""Slice definitions and vectorised slice-key assignment.

Every event is in slice ``all``; besides, in one slice per configured *dimension*:

- an attribute, ``camera_id`` -> slice ``camera_id=cam-3``;
- a cross of attributes, ``(region, device)`` -> slice ``region=eu,device=mobile``;
- numeric buckets of a field, ``image.brightness`` with edges ``(0.3, 0.6)`` ->
  ``image.brightness<0.3``, ``image.brightness=[0.3,0.6)``, ``image.brightness>=0.6``.

High-cardinality attributes are capped through an :class:`~monitor.contract.AdmittedGroups`:
values not admitted in the event's window fold into ``other``. The service admits the top-K by
volume per window (``monitor.core.slice_admission``, over :mod:`slices.sketch`);
:class:`SliceCatalog` is the in-memory one for offline use (reference capture, tests): the first
``max_values`` distinct values seen keep their name. A missing attribute is the value
``missing``.

>>> import numpy as np
>>> dims = dimensions(attributes=("camera",), crosses=(("region", "device"),))
>>> attrs = {"camera": np.array(["c1", "c2", "c1"], dtype=object),
...          "region": np.array(["eu", "eu", None], dtype=object),
...          "device": np.array(["ios", "web", "ios"], dtype=object)}
>>> catalog = SliceCatalog(max_values=10)
>>> for name, idx in assign(3, attrs, {}, dims, catalog):
...     print(name, idx.tolist())
all [0, 1, 2]
camera=c1 [0, 2]
camera=c2 [1]
region=eu,device=ios [0]
region=eu,device=web [1]
region=missing,device=ios [2]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from monitor.contract import AdmittedGroups

ALL = "all"
OTHER = "other"
MISSING = "missing"
_STR = frozenset({str})
STR_OR_NONE = frozenset({str, type(None)})  # values taken as they are (no str() of each)


@dataclass(frozen=True, slots=True)
class Dimension:
    """One way of slicing: ``fields`` are attribute names (``kind`` attribute/cross) or one
    numeric field such as ``image.brightness`` or ``latency_ms`` (``kind`` bucket)."""

    name: str
    kind: str  # "attribute" | "cross" | "bucket"
    fields: tuple[str, ...]
    edges: tuple[float, ...] = ()


def dimensions(attributes: tuple[str, ...] = (), crosses: tuple[tuple[str, ...], ...] = (),
               buckets: Mapping[str, tuple[float, ...]] | None = None) -> tuple[Dimension, ...]:
    dims = [Dimension(a, "attribute", (a,)) for a in attributes]
    dims += [Dimension("×".join(c), "cross", tuple(c)) for c in crosses]
    for name, edges in (buckets or {}).items():
        if list(edges) != sorted(edges):
            raise ValueError(f"slices.buckets.{name}: edges must be ascending")
        dims.append(Dimension(name, "bucket", (name,), tuple(float(e) for e in edges)))
    return tuple(dims)


@dataclass
class SliceCatalog:
    """Admitted values per attribute, first come first admitted, for every window (an in-memory
    :class:`~monitor.contract.AdmittedGroups` for offline use)."""

    max_values: int = 50
    admitted: dict[str, dict[str, None]] = field(default_factory=dict)  # ordered sets
    added: list[tuple[str, str]] = field(default_factory=list)  # since the last drain

    def cap(self, attribute: str, values: np.ndarray,
            window_start_ms: np.ndarray | None = None) -> np.ndarray:
        """``values`` with values beyond the cap replaced by ``other``, admitting new ones."""
        known = self.admitted.setdefault(attribute, {})
        uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
        mapped = uniq.copy()
        for i in np.argsort(first, kind="stable"):  # admit in stream order
            value = uniq[i]
            if value in known:
                continue
            if len(known) < self.max_values:
                known[value] = None
                self.added.append((attribute, value))
            else:
                mapped[i] = OTHER
        return mapped[inverse]

    def drain_added(self) -> list[tuple[str, str]]:
        added, self.added = self.added, []
        return added


def _value_codes(attrs: Mapping[str, np.ndarray], name: str,
                 n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(values, codes)``: the attribute's distinct values as str (``missing`` for None or an
    absent column; trailing NULs dropped, as a numpy str array would) and each row's index
    into them, from one dict pass over the rows."""
    column = attrs.get(name)
    if column is None:
        return np.array([MISSING], dtype=object), np.zeros(n, np.int64)
    rows = column.tolist()
    found = first_seen_of(rows, STR_OR_NONE)
    if found is None:  # numbers too (1 and 1.0 are one dict key, two strings)
        found = first_seen([None if v is None else str(v) for v in rows])
    distinct, codes = found
    values = np.array([MISSING if v is None else v.rstrip("\0") for v in distinct], dtype=object)
    return values, codes


def _capped_labels(field_: str, attrs: Mapping[str, np.ndarray], n: int,
                   catalog: AdmittedGroups, windows: tuple[np.ndarray, np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, codes)``: the distinct ``field=value`` labels of one attribute after
    ``catalog`` capped each (value, window) pair, and each row's index into them;
    ``windows`` is ``np.unique(window_start_ms, return_inverse=True)``.

    Only the distinct pairs go through the catalog and string building, in order of first
    occurrence (so a first-come catalog admits in stream order), not every row."""
    values, codes = _value_codes(attrs, field_, n)
    w_names, w_codes = windows
    pair = codes * len(w_names) + w_codes
    first = np.full(len(values) * len(w_names), n)
    np.minimum.at(first, pair, np.arange(n))
    seen = np.flatnonzero(first < n)
    seen = seen[np.argsort(first[seen], kind="stable")]  # pair codes by first occurrence
    capped = catalog.cap(field_, values[seen // len(w_names)], w_names[seen % len(w_names)])
    labels = np.array([f"{field_}={v}" for v in np.asarray(capped).tolist()], dtype=object)
    dense = np.empty(len(first), np.int64)
    dense[seen] = np.arange(len(seen))
    return labels, dense[pair]


def _bucket_codes(dim: Dimension, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = dim.edges
    names = [f"{dim.name}<{edges[0]:g}"] if edges else []
    names += [f"{dim.name}=[{lo:g},{hi:g})" for lo, hi in zip(edges, edges[1:])]
    names += [f"{dim.name}>={edges[-1]:g}"] if edges else [f"{dim.name}=any"]
    labels = np.array(names + [f"{dim.name}={MISSING}"], dtype=object)
    idx = np.searchsorted(np.asarray(edges, dtype=float), values, side="right")
    idx[np.isnan(values)] = len(names)
    return labels, idx


def dimension_labels(dim: Dimension, n: int, attrs: Mapping[str, np.ndarray],
                     numeric: Mapping[str, np.ndarray], catalog: AdmittedGroups,
                     window_start_ms: np.ndarray | None = None,
                     window_codes: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The slice name of every row for one dimension (object array of str); ``window_start_ms``
    (each row's window) is what ``catalog`` admits by (zeros when None). ``window_codes``:
    ``np.unique(window_start_ms, return_inverse=True)`` if the caller has it already."""
    labels, codes = dimension_codes(dim, n, attrs, numeric, catalog, window_start_ms,
                                    window_codes)
    return labels[codes]


def dimension_codes(dim: Dimension, n: int, attrs: Mapping[str, np.ndarray],
                    numeric: Mapping[str, np.ndarray], catalog: AdmittedGroups,
                    window_start_ms: np.ndarray | None = None,
                    window_codes: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`dimension_labels` as ``(labels, codes)``: slice names (object array of str, a
    name possibly repeated, e.g. ``other``) and each row's index into them."""
    if dim.kind == "bucket":
        values = numeric.get(dim.fields[0])
        if values is None:
            values = np.full(n, np.nan)
        return _bucket_codes(dim, np.asarray(values, dtype=float))
    if window_codes is None:
        starts = np.zeros(n, dtype=np.int64) if window_start_ms is None else window_start_ms
        w_names, w_codes = np.unique(starts, return_inverse=True)
        window_codes = (w_names, w_codes.ravel())
    windows = window_codes
    labels, codes = _capped_labels(dim.fields[0], attrs, n, catalog, windows)
    for f in dim.fields[1:]:  # a cross: join the fields' labels per distinct combination
        more, more_codes = _capped_labels(f, attrs, n, catalog, windows)
        uniq, inverse = np.unique(codes * len(more) + more_codes, return_inverse=True)
        labels = np.array([f"{labels[u // len(more)]},{more[u % len(more)]}"
                           for u in uniq.tolist()], dtype=object)
        codes = inverse.ravel()
    return labels, codes


def first_seen(rows: list) -> tuple[list, np.ndarray]:
    """``(distinct, codes)``: the distinct (hashable) values of ``rows`` in order of first
    occurrence and each row's index into them (int64).

    ``dict.fromkeys`` and ``map(dict.__getitem__)`` walk the rows in C: half the CPU of a
    generator calling ``dict.setdefault`` per row (10,000 rows of 20 names).

    >>> distinct, codes = first_seen(["b", "a", None, "b"])
    >>> distinct, codes.tolist()
    (['b', 'a', None], [0, 1, 2, 0])
    """
    index = dict.fromkeys(rows)
    for i, v in enumerate(index):
        index[v] = i
    return list(index), np.fromiter(map(index.__getitem__, rows), np.int64, len(rows))


def first_seen_of(rows: list, types: frozenset[type]) -> tuple[list, np.ndarray] | None:
    """:func:`first_seen` when every distinct value is of one of ``types`` (str, None), else
    None (a number, an unhashable value). The types of the few distinct values are checked,
    not every row's: a row equal to a str is a str (or a str subclass, the same str())."""
    try:
        distinct, codes = first_seen(rows)
    except TypeError:  # unhashable
        return None
    return (distinct, codes) if set(map(type, distinct)) <= types else None


def factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values.astype(str), return_inverse=True)`` (int64 codes) of an object array
    of a few distinct strings (slice labels, attribute values): one dict pass over the rows,
    then a sort of the distinct values only, not a conversion and sort of every row's string
    (half the time of ``np.unique`` on 10,000 rows of 40 names).

    >>> names, codes = factorize(np.array(["b", "a", None, "b"], dtype=object))
    >>> names.tolist(), codes.tolist()
    (['None', 'a', 'b'], [2, 1, 0, 2])
    """
    first = values[0] if len(values) else None
    if type(first) is str and not first.endswith("\0") and (values == first).all():
        # One value (a batch's model version, mostly): a C comparison per row, no dict pass.
        return np.array([first], dtype=str), np.zeros(len(values), np.int64)
    rows = values.tolist()
    found = first_seen_of(rows, _STR)
    distinct, codes = first_seen(list(map(str, rows))) if found is None else found
    order = sorted(range(len(distinct)), key=distinct.__getitem__)
    names = [distinct[i] for i in order]
    if any(v.endswith("\0") for v in names):  # numpy's str arrays drop trailing NULs
        uniq, inverse = np.unique(values.astype(str), return_inverse=True)
        return uniq, inverse.ravel().astype(np.int64)
    rank = np.empty(len(names), np.int64)
    rank[order] = np.arange(len(names))
    return np.array(names, dtype=str), rank[codes]


def assign(n: int, attrs: Mapping[str, np.ndarray], numeric: Mapping[str, np.ndarray],
           dims: tuple[Dimension, ...], catalog: AdmittedGroups) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(slice_name, row_indices)`` for ``all`` and every slice present in the rows."""
    yield ALL, np.arange(n)
    for dim in dims:
        labels = dimension_labels(dim, n, attrs, numeric, catalog)
        uniq, inverse = np.unique(labels.astype(str), return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
        for j, name in enumerate(uniq):
            yield str(name), order[bounds[j]:bounds[j + 1]]
