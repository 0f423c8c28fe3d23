"""The alert state machine, per fingerprint: ``pending -> firing -> resolved``, and two quiet
open states: ``suppressed`` while a maintenance window covers it, ``explained`` while a more
specific slice's alert carries it. Pure: one step per observed window, driven by event time, so
a replay after a crash takes the same steps.

``for: N`` counts N *adjacent* evaluated windows (each starting one window length after the
previous one); a gap, or a window with insufficient data, starts the count again.

>>> s, W = AlertState(), 600_000
>>> for window, holds in [(0, True), (1, True), (2, True), (3, False), (4, True), (5, INSUFFICIENT)]:
...     s = step(s, window * W, holds, for_windows=2, quiet=None, window_length_ms=W)
...     print(window, s.state, s.consecutive)
0 pending 1
1 firing 2
2 firing 3
3 resolved 0
4 pending 1
5 resolved 0
"""

from __future__ import annotations

from typing import Literal

from monitor.store.alerts import AlertState

#: A finding with ``insufficient_data`` / ``no_reference``: not a verdict, but no evidence either.
INSUFFICIENT = "insufficient"
Verdict = Literal[True, False, None, "insufficient"]


def step(s: AlertState, window_ms: int, holds: Verdict, for_windows: int,
         quiet: str | None = None, window_length_ms: int | None = None) -> AlertState:
    """The state after the rule's verdict on one window.

    ``holds``: True/False, None (the verdict is not known yet, e.g. a composite rule's other
    part: nothing changes) or ``"insufficient"`` (insufficient data: a pending alert is reset,
    a firing one stays firing -- no data is not recovery). A re-evaluation of an older window
    than the last one seen changes nothing (the newest verdict stands); a re-evaluation of the
    same window counts once. ``window_length_ms``: windows count as adjacent when they are this
    far apart (None: any later window is adjacent). ``quiet``: ``"suppressed"`` (a maintenance
    window) or ``"explained"`` (a more specific slice carries it): the alert stays open in that
    state instead of firing (Alertmanager is told a firing one ended) and fires again if it
    still holds when that ends.
    """
    if holds is None or (s.last_window_ms is not None and window_ms < s.last_window_ms):
        return s
    if holds == INSUFFICIENT:
        if s.state == "pending" and window_ms != s.last_window_ms:
            return AlertState("resolved", 0, window_ms)
        return s
    if not s.open:
        if not holds:
            return s
        n = 1
    elif not holds:
        return AlertState("resolved", 0, window_ms)
    elif window_ms == s.last_window_ms:
        n = s.consecutive
    elif window_length_ms is None or window_ms - s.last_window_ms == window_length_ms \
            or s.state != "pending":
        n = s.consecutive + 1
    else:  # a gap: the windows are not adjacent, the count starts again
        n = 1
    if n < for_windows:
        return AlertState("pending", n, window_ms)
    return AlertState(quiet or "firing", n, window_ms)
