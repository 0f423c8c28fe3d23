"""The fairness audit of a time range: the ``fairness`` detector's window states merged
(:mod:`monitor.reports.fairness_report`) and audited and rendered by the same code as
``vitmon fairness report`` (:mod:`detectors.fairness_report`), so the page, its CSV/HTML
downloads and the command line show the same numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Connection

from detectors.fairness import Fairness
from detectors.fairness_audit import Audit
from detectors.fairness_report import render_csv, render_html
from monitor.reports.fairness_report import NoReportData, merged_state


@dataclass(frozen=True, slots=True)
class FairnessAudit:
    audit: Audit
    windows: int  # evaluated windows merged into the audit
    csv: str  # the report, as `vitmon fairness report --format csv` writes it
    html: str  # ... and as a self-contained HTML file


def fairness_audit(conn: Connection, params_json: str, alpha: float, model: str, version: str,
                   slice_: str, start_ms: int, end_ms: int) -> FairnessAudit | None:
    """None when the range has no ``fairness`` state (detector off, or no protected attribute).

    ``params_json`` holds the detector's constructor parameters (``settings.detector_params()
    ["fairness"]``) as JSON, so the cached call has a hashable, stable key.
    """
    det = Fairness(**json.loads(params_json))
    if not det.dimensions:
        return None
    try:  # one indexed range read of window_states (primary-key prefix)
        state, windows = merged_state(conn.engine, det, model, version, start_ms, end_ms, slice_)
    except NoReportData:
        return None
    result = det.audit(state, alpha)
    return FairnessAudit(result, windows, render_csv(result),
                         render_html(result, model, version, start_ms, end_ms, windows, slice_))
