"""``vitmon fairness report`` (and the UI's audit downloads): a detector's window states of one
slice whose windows start in ``[from, to)`` are merged -- exact for count states such as the
fairness detector's -- and the detector renders the merged state itself
(:class:`~monitor.contract.RangeReporter`), so the report needs that detector enabled while the
traffic was consumed, and is not limited by the predictions' retention."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from monitor.contract import Detector, RangeReporter, ReportScope
from monitor.errors import ConfigError, VitmonError
from monitor.store.window_states import load_states


class NoReportData(VitmonError):
    def __init__(self, detector: str, model: str, version: str, slice_: str) -> None:
        super().__init__(f"no {detector} state for {model} {version} slice {slice_} in that "
                         f"range (was the `{detector}` detector enabled and configured?)")


def merged_state(engine: Engine, det: Detector, model: str, version: str, from_ms: int,
                 to_ms: int, slice_: str = "all") -> tuple[Any, int]:
    """The detector's states of the range merged, and how many windows they came from."""
    with engine.connect() as conn:
        stored = load_states(conn, {det.name: det}, model=model, versions=(version,),
                             slice_=slice_, windows=(from_ms, to_ms))
    if not stored:
        raise NoReportData(det.name, model, version, slice_)
    state = det.empty()
    for s in stored:
        state = det.merge(state, s.state)
    return state, len(stored)


def range_report(engine: Engine, det: Detector, alpha: float, model: str, version: str,
                 from_ms: int, to_ms: int, fmt: str, slice_: str = "all") -> str:
    """The detector's report of the range in ``fmt`` (one of its ``report_formats``)."""
    if not isinstance(det, RangeReporter) or fmt not in det.report_formats:
        raise ConfigError(f"detectors.enabled ({det.name})", f"renders no {fmt} report")
    state, windows = merged_state(engine, det, model, version, from_ms, to_ms, slice_)
    return det.render_report(state, ReportScope(model, version, slice_, from_ms, to_ms, windows,
                                                alpha), fmt)
