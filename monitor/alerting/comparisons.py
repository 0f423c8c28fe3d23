"""Canary vs baseline, monitor side: a checkpoint hook that compares two versions' window states.

Why here and not in the detector: a detector sees one (model, version, slice, window) key at a
time, and the comparison spans two versions. The ``version_health`` detector keeps each
version's figures in ``window_states`` like any other detector; whenever one of its windows is
(re-)evaluated -- at window close, or when late labels arrive -- this hook reads the canary's and
the baseline's states for the same slices and window (in the same transaction) and stores the
pure :func:`detectors.version_health.compare` result as a finding of the *canary*, subject
``vs <baseline>``. The baseline (``models.<name>.baseline_version``) is never compared with
itself, so it never gets a "rollback recommended".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, text

from detectors.version_health import VersionHealth, compare
from monitor.checkpoint import unpack
from monitor.contract import Batch, Finding
from monitor.finding_rows import upsert_findings
from monitor.windows import DeltaKey


class VersionHealthHook:
    def __init__(self, detector: VersionHealth, baselines: Mapping[str, str], alpha: float,
                 min_samples: int, window_size_ms: int) -> None:
        self.det = detector
        self.baselines = dict(baselines)  # model -> baseline version
        self.alpha = alpha
        self.min_samples = min_samples
        self.size_ms = window_size_ms

    def on_predictions(self, conn: Connection, batch: Batch) -> None:
        """Comparisons follow evaluations, not events."""

    def before_commit(self, conn: Connection, result: Any) -> None:
        touched = sorted({(k.model, k.model_version, k.window_start_ms) for k, f in result.findings
                          if f.detector == self.det.name and not f.subject
                          and k.model in self.baselines})
        pairs: set[tuple[str, str, int]] = set()
        for model, version, window in touched:
            base = self.baselines[model]
            if version != base:
                pairs.add((model, version, window))
                continue
            for (canary,) in conn.execute(text(  # the baseline moved: re-judge its canaries
                    "SELECT DISTINCT model_version FROM window_states WHERE detector = :d "
                    "AND model = :m AND window_start_ms = :w AND model_version <> :b"),
                    {"d": self.det.name, "m": model, "w": window, "b": base}).all():
                pairs.add((model, canary, window))
        rows: list[tuple[DeltaKey, int, Finding]] = []
        for model, canary, window in sorted(pairs):
            rows += self._compare(conn, model, canary, window)
        upsert_findings(conn, rows)
        result.findings.extend((k, f) for k, _, f in rows)

    def _compare(self, conn: Connection, model: str, canary: str, window: int
                 ) -> list[tuple[DeltaKey, int, Finding]]:
        base = self.baselines[model]
        states: dict[tuple[str, str], Any] = {}
        for r in conn.execute(text(
                "SELECT model_version, slice, state FROM window_states WHERE detector = :d "
                "AND model = :m AND window_start_ms = :w AND model_version IN (:c, :b)"),
                {"d": self.det.name, "m": model, "w": window, "c": canary, "b": base}).all():
            states[(r.model_version, r.slice)] = self.det.loads(unpack(r.state))
        slices = sorted(s for v, s in states if v == canary and (base, s) in states)
        out = []
        for slice_name in slices:  # alpha is shared by the canary's slices of this window
            f = compare(self.det, states[(canary, slice_name)], states[(base, slice_name)], base,
                        self.alpha, len(slices), self.min_samples)
            out.append((DeltaKey(self.det.name, model, canary, slice_name, window),
                        window + self.size_ms, f))
        return out
