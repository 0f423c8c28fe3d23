"""Slice names as data: build group labels for attribute combinations, parse names back into
conditions, and derive quantile bucket edges from reference values. Pure and vectorised.

A slice name is ``all`` or comma-separated ``attribute=value`` conditions in the order of the
dimension's fields (``region=eu,device=mobile``); bucket slices (``image.brightness<0.3``) are
names too but not conditions on ``attrs``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from slices.assign import ALL, MISSING


def attribute_values(attrs: Mapping[str, np.ndarray], name: str, n: int) -> np.ndarray:
    """The values of one attribute as ``str`` (``missing`` where absent), uncapped.

    >>> attribute_values({"tier": np.array(["pro", None, 3], dtype=object)}, "tier", 3).tolist()
    ['pro', 'missing', '3']
    """
    column = attrs.get(name)
    if column is None:
        return np.full(n, MISSING, dtype=object)
    out = np.asarray(column, dtype=object).copy()
    out[np.equal(out, None)] = MISSING
    return out.astype(str).astype(object)


def group_labels(attrs: Mapping[str, np.ndarray], fields: Sequence[str], n: int) -> np.ndarray:
    """Each row's group name for a combination of attributes (``group=B,region=eu``).

    >>> attrs = {"group": np.array(["A", "B"], dtype=object), "region": np.array(["eu", None],
    ...          dtype=object)}
    >>> group_labels(attrs, ("group", "region"), 2).tolist()
    ['group=A,region=eu', 'group=B,region=missing']
    """
    label = None
    for f in fields:
        part = np.char.add(f"{f}=", attribute_values(attrs, f, n).astype(str))
        label = part if label is None else np.char.add(np.char.add(label, ","), part)
    return (np.full(n, ALL) if label is None else label).astype(object)


def parse(name: str) -> dict[str, str]:
    """Conditions of an attribute or cross slice name (``{}`` for ``all``).

    Values may contain ``=`` but not ``,`` followed by ``attribute=``; bucket names are not
    attribute conditions and raise ``ValueError``.

    >>> parse("region=eu-west,device=edge-gpu")
    {'region': 'eu-west', 'device': 'edge-gpu'}
    >>> parse("all")
    {}
    """
    if name == ALL:
        return {}
    out: dict[str, str] = {}
    for part in name.split(","):
        attr, sep, value = part.partition("=")
        if not sep or not attr or any(c in attr for c in "<>[("):
            raise ValueError(f"not an attribute slice: {name!r}")
        out[attr] = value
    return out


def format_conditions(conditions: Mapping[str, str]) -> str:
    """Inverse of :func:`parse`.

    >>> format_conditions({"camera_id": "cam-03", "device": "edge-gpu"})
    'camera_id=cam-03,device=edge-gpu'
    """
    return ",".join(f"{k}={v}" for k, v in conditions.items()) or ALL


def quantile_edges(values: np.ndarray, n_bins: int, digits: int = 3) -> tuple[float, ...]:
    """Inner edges of ``n_bins`` quantile buckets of reference ``values`` for
    ``slices.buckets`` (rounded, deduplicated, NaN ignored), so each bucket of the reference
    holds about the same number of events.

    >>> quantile_edges(np.arange(100.0), 4)
    (24.75, 49.5, 74.25)
    """
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0 or n_bins < 2:
        return ()
    q = np.quantile(v, np.arange(1, n_bins) / n_bins)
    return tuple(float(x) for x in np.unique(np.round(q, digits)))
