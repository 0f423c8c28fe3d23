"""Slice containment: when a slice and slices that contain it hold on the same rule, detector and
window, the most specific slice carries the alert and the containing ones are *explained by* it
(camera ``camera_id=cam-03`` explains ``region=us-east``, ``device=edge-gpu`` and ``all``).
Pure: the engine supplies which slice contains which.

A broad cause is the other way round: when most of a slice's events are in holding sub-slices
(a bad canary moves every camera), that slice carries the alert and explains its sub-slices.

A slice ``B`` contains ``A`` (for explaining) by name (``all`` contains every slice;
``region=eu`` contains ``region=eu,device=gpu``), or by the window's own events: ``B`` is larger
and at least ``alerts.explain_share`` of ``A``'s events are in ``B`` -- a camera sits in one
region (all of its events), and a quarter or more of a broken camera's events are in each group
of a protected attribute, so the camera explains the groups' alerts too.

>>> contains_by_name("all", "camera_id=cam-03"), contains_by_name("region=eu", "region=eu,device=x")
(True, True)
>>> contains_by_name("region=eu", "camera_id=cam-03"), contains_by_name("all", "all")
(False, False)
>>> carriers(["all", "region=us-east", "camera_id=cam-03"],
...          lambda big, small: big != small and (big == "all" or small == "camera_id=cam-03"),
...          {"all": 1000, "region=us-east": 390, "camera_id=cam-03": 150})
{'all': 'camera_id=cam-03', 'region=us-east': 'camera_id=cam-03'}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from slices import ALL, parse


def contains_by_name(big: str, small: str) -> bool:
    """Whether slice ``big`` contains slice ``small`` (strictly) by their names alone."""
    if big == small:
        return False
    if big == ALL:
        return True
    try:
        b, s = parse(big), parse(small)
    except ValueError:  # bucket slices: no conditions on attributes
        return False
    return len(b) < len(s) and all(s.get(k) == v for k, v in b.items())


def dimension(name: str) -> str:
    """The attributes a slice conditions on (``camera_id``, ``device,region``), or the name of a
    bucket slice's field: slices of one dimension are disjoint.

    >>> dimension("region=eu,device=gpu"), dimension("image.brightness<0.3"), dimension("all")
    ('device,region', 'image.brightness', '')
    """
    try:
        return ",".join(sorted(parse(name)))
    except ValueError:
        return name.split("<")[0].split("=")[0].split(">")[0]


def contains_by_counts(big: str, small: str, n: Mapping[str, int],
                       both: Mapping[tuple[str, str], int], share: float) -> bool:
    """Whether at least ``share`` of ``small``'s events are also in ``big`` (and ``big`` is the
    larger one), from the window's event counts ``n`` and pair counts ``both``."""
    n_small, n_big = n.get(small, 0), n.get(big, 0)
    return (n_small > 0 and n_big > n_small
            and both.get((small, big), both.get((big, small), 0)) >= share * n_small)


def carriers(holding: Iterable[str], contains: Callable[[str, str], bool],
             n: Mapping[str, int] | None = None, broad_share: float = 0.5,
             both: Mapping[tuple[str, str], int] | None = None) -> dict[str, str]:
    """Which holding slice carries each holding slice that is not its own carrier.

    A slice that contains other holding slices is explained by the most specific of them (one
    that contains no other holding slice; of several, the one with the most events -- the
    largest part of the cause). Unless the cause is broad: when two or more most specific
    holding slices of one dimension (two cameras, not a camera and a group) hold at least
    ``broad_share`` of its events (``both``: the pair counts; a bad canary moves every camera),
    the containing slice carries the alert and explains every holding slice inside it. Slices
    carrying themselves are absent from the result.

    >>> n = {"all": 100, "camera_id=a": 50, "camera_id=b": 40, "camera_id=c": 10}
    >>> inside = lambda big, small: big == "all" and small != "all"
    >>> carriers(["all", "camera_id=a", "camera_id=b"], inside, n)
    {'camera_id=a': 'all', 'camera_id=b': 'all'}
    >>> carriers(["all", "camera_id=c"], inside, n)
    {'all': 'camera_id=c'}
    """
    names: Sequence[str] = sorted(set(holding))
    counts = n or {}
    inside = {b: [a for a in names if contains(b, a)] for b in names}
    minimal = [a for a in names if not inside[a]]
    parts = {b: [a for a in minimal if a in inside[b]] for b in names}
    pairs = both or {}

    def share_of(b: str, a: str) -> int:  # events of a that are in b
        return pairs.get((a, b), pairs.get((b, a), counts.get(a, 0) if contains_by_name(b, a)
                                            else 0))

    def is_broad(b: str) -> bool:
        by_dimension: dict[str, list[str]] = {}
        for a in parts[b]:
            by_dimension.setdefault(dimension(a), []).append(a)
        return counts.get(b, 0) > 0 and any(
            len(group) >= 2 and sum(share_of(b, a) for a in group) >= broad_share * counts[b]
            for group in by_dimension.values())

    broad = [b for b in names if is_broad(b)]
    outer = [b for b in broad if not any(b in inside[c] for c in broad)]
    by_size = lambda a: (counts.get(a, 0), a)  # noqa: E731
    roots = outer + [a for a in minimal if not any(a in inside[c] for c in outer)]
    out: dict[str, str] = {}
    for b in names:
        around = [c for c in outer if b in inside[c]]
        below = [r for r in roots if r in inside[b]]
        if around:
            out[b] = max(around, key=by_size)
        elif b not in roots and below:
            out[b] = max(below, key=by_size)
    return out
