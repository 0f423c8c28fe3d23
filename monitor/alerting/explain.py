"""Slice containment: when a slice and slices that contain it hold on the same rule, detector and
window, the most specific slice carries the alert and the containing ones are *explained by* it
(camera ``camera_id=cam-03`` explains ``region=us-east``, ``device=edge-gpu`` and ``all``).
Pure: the engine supplies which slice contains which.

A slice ``B`` contains ``A`` when every event of ``A`` is in ``B``: by name (``all`` contains
every slice; ``region=eu`` contains ``region=eu,device=gpu``), or by the window's own events (at
least ``alerts.containment_share`` of ``A``'s events are in ``B``: a camera sits in one region).

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


def contains_by_counts(big: str, small: str, n: Mapping[str, int],
                       both: Mapping[tuple[str, str], int], share: float) -> bool:
    """Whether at least ``share`` of ``small``'s events are also in ``big`` (and ``big`` is the
    larger one), from the window's event counts ``n`` and pair counts ``both``."""
    n_small, n_big = n.get(small, 0), n.get(big, 0)
    return (n_small > 0 and n_big > n_small
            and both.get((small, big), both.get((big, small), 0)) >= share * n_small)


def carriers(holding: Iterable[str], contains: Callable[[str, str], bool],
             n: Mapping[str, int] | None = None) -> dict[str, str]:
    """For each holding slice that contains another holding slice: the most specific holding
    slice it contains (the one that contains no other holding slice; of several, the one with
    the most events -- the largest part of the cause). Slices carrying themselves are absent."""
    names: Sequence[str] = sorted(set(holding))
    inside = {b: [a for a in names if contains(b, a)] for b in names}
    minimal = [a for a in names if not inside[a]]
    out: dict[str, str] = {}
    for b in names:
        candidates = [a for a in minimal if a in inside[b]]
        if candidates:
            out[b] = max(candidates, key=lambda a: ((n or {}).get(a, 0), a))
    return out
