"""Rate limit for wrong shared passwords, per client address. Pure: the clock is passed in.

After ``max_failures`` wrong passwords within ``window_s`` seconds, a client's attempts are not
even checked for ``lockout_s`` seconds, doubling with each further lockout; a right password
clears its record. Guessing a password through the form therefore costs hours, not seconds.

>>> lim = LoginLimiter(max_failures=3, window_s=60, lockout_s=30)
>>> [lim.fail("10.0.0.7", now=t) for t in (0, 1, 2)]
[0.0, 0.0, 30.0]
>>> lim.wait("10.0.0.7", now=10), lim.wait("10.0.0.8", now=10)
(22.0, 0.0)
>>> lim.fail("10.0.0.7", now=40), lim.fail("10.0.0.7", now=41), lim.fail("10.0.0.7", now=42)
(0.0, 0.0, 60.0)
>>> lim.succeed("10.0.0.7"); lim.wait("10.0.0.7", now=43)
0.0
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

MAX_CLIENTS = 10_000  # records kept; the oldest are forgotten beyond this


@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0
    lockouts: int = 0


class LoginLimiter:
    """Counts wrong passwords per client; thread-safe (one instance per UI server process)."""

    def __init__(self, max_failures: int = 5, window_s: float = 300.0,
                 lockout_s: float = 60.0) -> None:
        self.max_failures, self.window_s, self.lockout_s = max_failures, window_s, float(lockout_s)
        self._clients: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def wait(self, client: str, now: float) -> float:
        """Seconds before ``client`` may try again (0: now)."""
        with self._lock:
            rec = self._clients.get(client)
            return max(0.0, rec.locked_until - now) if rec else 0.0

    def fail(self, client: str, now: float) -> float:
        """Record a wrong password; return the lockout it caused (0: none)."""
        with self._lock:
            rec = self._clients.setdefault(client, _Record())
            if len(self._clients) > MAX_CLIENTS:
                self._clients.pop(next(iter(self._clients)))
            rec.failures = [t for t in rec.failures if now - t < self.window_s] + [now]
            if len(rec.failures) < self.max_failures:
                return 0.0
            lockout = float(self.lockout_s * 2 ** rec.lockouts)
            rec.lockouts += 1
            rec.failures = []
            rec.locked_until = now + lockout
            return lockout

    def succeed(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)
