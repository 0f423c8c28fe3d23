"""The alert state machine, per fingerprint: ``pending -> firing -> resolved`` (and
``suppressed`` while a maintenance window covers a firing alert). Pure: one step per observed
window, driven by event time, so a replay after a crash takes the same steps.

>>> s = AlertState()
>>> for window, holds in [(0, True), (1, True), (2, True), (3, False)]:
...     s = step(s, window, holds, for_windows=2, suppressed=False)
...     print(window, s.state, s.consecutive)
0 pending 1
1 firing 2
2 firing 3
3 resolved 0
"""

from __future__ import annotations

from monitor.store.alerts import AlertState


def step(s: AlertState, window_ms: int, holds: bool | None, for_windows: int,
         suppressed: bool) -> AlertState:
    """The state after the rule's verdict on one window.

    ``holds=None`` (insufficient data) changes nothing. A re-evaluation of an older window than
    the last one seen changes nothing either (the newest verdict stands); a re-evaluation of the
    same window counts once. A firing alert in a maintenance window becomes ``suppressed``
    (Alertmanager is told it ended) and fires again if it still holds when the window ends.
    """
    if holds is None or (s.last_window_ms is not None and window_ms < s.last_window_ms):
        return s
    if not s.open:
        if not holds:
            return s
        n = 1
    elif not holds:
        return AlertState("resolved", 0, window_ms)
    else:
        n = s.consecutive if window_ms == s.last_window_ms else s.consecutive + 1
    if n < for_windows:
        return AlertState("pending", n, window_ms)
    return AlertState("suppressed" if suppressed else "firing", n, window_ms)
