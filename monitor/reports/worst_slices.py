"""``vitmon slices discover``: worst-slice discovery over labelled predictions of a time range.

Reads predictions JOIN labels for one model version and ``[from, to)`` of event time (through
``ix_predictions_model_ts``; the labels join is by primary key), runs
:func:`slices.discovery.discover` on the ``attrs`` of the labelled, successful predictions, and
replaces the ``worst_slice`` findings of that range: slice ``all`` (the scope searched), window
= the range, subject = the slice found (``camera_id=cam-03,device=edge-gpu``), score = effect
size (error rate minus the overall rate), threshold = ``min_effect``, p-value BH-adjusted,
``details.rank`` = its rank. Run on demand or from cron (predictions older than the label
horizon are pruned, so the range must be younger than that).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, Engine

from monitor.app.config import WorstSliceSettings
from monitor.contract import Finding, Severity, Status
from monitor.store import findings, predictions
from monitor.store.keys import WindowKey
from slices.assign import MISSING
from slices.discovery import SliceFinding, discover

DETECTOR, VERSION = "worst_slice", 1


@dataclass(frozen=True, slots=True)
class Discovery:
    model: str
    model_version: str
    from_ms: int
    to_ms: int
    n_labelled: int
    error_rate: float
    findings: tuple[SliceFinding, ...]


def labelled_rows(conn: Connection, model: str, version: str, from_ms: int,
                  to_ms: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Attribute columns (``str``, ``missing`` where absent) and the error flag of every labelled
    successful prediction in the range."""
    rows = predictions.labelled(conn, model, version, from_ms, to_ms)
    names = sorted({k for r in rows for k in (r.attrs or {})})
    attrs = {k: np.array([str((r.attrs or {}).get(k, MISSING)) for r in rows], dtype=object)
             for k in names}
    return attrs, np.fromiter((r.wrong for r in rows), bool, len(rows))


def run(engine: Engine, settings: WorstSliceSettings, model: str, version: str, from_ms: int,
        to_ms: int, alpha: float = 0.05, write: bool = True) -> Discovery:
    with engine.connect() as conn:
        attrs, error = labelled_rows(conn, model, version, from_ms, to_ms)
    if settings.attributes:
        attrs = {k: attrs.get(k, np.full(len(error), MISSING, dtype=object))
                 for k in settings.attributes}
    found = discover(attrs, error, max_order=settings.max_order, min_support=settings.min_support,
                     min_effect=settings.min_effect, alpha=alpha, top_k=settings.top_k)
    result = Discovery(model, version, from_ms, to_ms, len(error),
                       float(error.mean()) if len(error) else float("nan"), found)
    if write:
        with engine.begin() as conn:
            store(conn, result, settings.min_effect)
    return result


def store(conn: Connection, d: Discovery, min_effect: float) -> None:
    """Replace the range's findings (a re-run must not leave slices it no longer finds)."""
    key = WindowKey(DETECTOR, d.model, d.model_version, "all", d.from_ms)
    findings.delete_window(conn, key)
    findings.upsert_findings(conn, [
        (key, d.to_ms, Finding(DETECTOR, VERSION, Status.ALERT, score=f.effect,
                               threshold=min_effect, p_value=f.p_adjusted,
                               severity=Severity.TICKET, n=f.n, subject=f.name,
                               test="slice-vs-rest-z", details=as_json(f, rank)))
        for rank, f in enumerate(d.findings, start=1)])


def as_json(f: SliceFinding, rank: int) -> dict:
    return {"rank": rank, "conditions": dict(f.conditions), "errors": f.errors,
            "error_rate": f.error_rate, "overall_error_rate": f.overall_rate,
            "effect": f.effect, "error_rate_ci": list(f.ci), "p_value": f.p_value,
            "p_adjusted": f.p_adjusted, "n": f.n}
