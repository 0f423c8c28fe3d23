"""Canary vs baseline: a checkpoint hook that compares two versions' window states for every
detector with the :class:`~monitor.contract.VersionComparator` ability (``version_health``
among the built-ins).

Why here and not in the detector: ``evaluate`` sees one (model, version, slice, window) key at a
time, and a comparison spans two versions. The detector keeps each version's figures in
``window_states`` like any other; whenever one of its windows is (re-)evaluated -- at window
close, or when late labels arrive -- this hook reads the canary's and the baseline's states for
the same slices and window (in the same transaction) and stores the detector's
``compare_versions`` finding under the *canary's* key, subject ``vs <baseline>``. The baseline
(``models.<name>.baseline_version``) is never compared with itself, so it never gets a
"rollback recommended".

After the commit, each compared canary's verdict in its latest compared window becomes
``vitmon_version_health{model,baseline,canary,verdict}`` (the hook for rollout tools: Argo
Rollouts and Flagger templates in ``deploy/rollouts/``): ``rollback`` when a slice's comparison
is in alert, ``healthy`` when at least one slice had enough data and none is, else
``insufficient_data``. A late re-evaluation of an older window does not override a newer one.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection

from monitor.contract import Batch, Detector, EvalContext, Finding, Status, VersionComparator
from monitor.core.checkpoint import CheckpointResult
from monitor.core.metrics import Metrics
from monitor.core.windows import state_key
from monitor.store import window_states
from monitor.store.findings import revisions, upsert_findings
from monitor.store.keys import WindowKey


class VersionComparisonHook:
    def __init__(self, detector: Detector, baselines: Mapping[str, str], alpha: float,
                 min_samples: int, window_size_ms: int, metrics: Metrics | None = None) -> None:
        if not isinstance(detector, VersionComparator):
            raise TypeError(f"{detector.name} does not compare versions")
        self.det = detector
        self.baselines = dict(baselines)  # model -> baseline version
        self.alpha = alpha
        self.min_samples = min_samples
        self.size_ms = window_size_ms
        self.metrics = metrics
        self._latest: dict[tuple[str, str], int] = {}  # (model, canary) -> window shown
        self._pending: dict[tuple[str, str], tuple[int, str]] = {}  # set after the commit

    def on_predictions(self, conn: Connection, batch: Batch) -> None:
        """Comparisons follow evaluations, not events."""

    def before_commit(self, conn: Connection, result: CheckpointResult) -> None:
        touched = sorted({(k.model, k.model_version, k.window_start_ms) for k, f in result.findings
                          if f.detector == self.det.name and not f.subject
                          and k.model in self.baselines})
        pairs: set[tuple[str, str, int]] = set()
        for model, version, window in touched:
            base = self.baselines[model]
            if version != base:
                pairs.add((model, version, window))
                continue
            for canary in window_states.versions_in_window(conn, self.det.name, model, window,
                                                           base):
                pairs.add((model, canary, window))  # the baseline moved: re-judge its canaries
        rows: list[tuple[WindowKey, int, Finding]] = []
        for model, canary, window in sorted(pairs):
            rows += self._compare(conn, model, canary, window)
        upsert_findings(conn, rows)
        result.findings.extend((k, f) for k, _, f in rows)
        self._pending = verdicts(rows)

    def after_commit(self, result: CheckpointResult) -> None:
        """The verdicts of the committed comparisons become ``vitmon_version_health``."""
        pending, self._pending = self._pending, {}
        if self.metrics is None:
            return
        for (model, canary), (window, verdict) in sorted(pending.items()):
            if window < self._latest.get((model, canary), window):
                continue  # a late look at an older window
            self._latest[(model, canary)] = window
            self.metrics.record_version_health(model, self.baselines[model], canary, verdict)

    def _compare(self, conn: Connection, model: str, canary: str, window: int
                 ) -> list[tuple[WindowKey, int, Finding]]:
        base = self.baselines[model]
        states = {(s.key.model_version, s.key.slice): s.state for s in window_states.load_states(
            conn, {self.det.name: self.det}, model=model, versions=(canary, base),
            windows=(window, window + 1))}
        slices = sorted(s for v, s in states if v == canary and (base, s) in states)
        keys = [WindowKey(self.det.name, model, canary, s, window) for s in slices]
        looks = revisions(conn, keys, f"vs {base}")  # earlier comparisons of the same window
        out = []
        for key in keys:  # alpha is shared by the canary's slices of this window
            slice_name = key.slice
            context = EvalContext(state_key(key, self.size_ms), None, self.alpha, len(slices),
                                  self.min_samples, looks.get(key, 0))
            f = self.det.compare_versions(states[(canary, slice_name)], states[(base, slice_name)],
                                          base, context)
            out.append((key, window + self.size_ms, f))
        return out


def verdicts(rows: list[tuple[WindowKey, int, Finding]]) -> dict[tuple[str, str], tuple[int, str]]:
    """(model, canary) -> (latest window, verdict) of comparison findings.

    >>> from monitor.contract import Finding, Status
    >>> k = lambda v, s, w: WindowKey("vh", "m", v, s, w)
    >>> f = lambda st: Finding("vh", 1, st, subject="vs 1")
    >>> verdicts([(k("2", "all", 0), 0, f(Status.OK)), (k("2", "cam", 0), 0, f(Status.ALERT)),
    ...           (k("3", "all", 0), 0, f(Status.INSUFFICIENT_DATA)),
    ...           (k("3", "all", 60), 0, f(Status.OK))])
    {('m', '2'): (0, 'rollback'), ('m', '3'): (60, 'healthy')}
    """
    by: dict[tuple[str, str], dict[int, list[Status]]] = {}
    for key, _, f in rows:
        by.setdefault((key.model, key.model_version), {}).setdefault(
            key.window_start_ms, []).append(f.status)
    out = {}
    for pair, windows in by.items():
        window = max(windows)
        statuses = windows[window]
        verdict = ("rollback" if Status.ALERT in statuses else
                   "healthy" if any(s in (Status.OK, Status.WARN) for s in statuses) else
                   "insufficient_data")
        out[pair] = (window, verdict)
    return out
