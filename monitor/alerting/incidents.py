"""Incidents: the alerts of one cause, grouped inside the checkpoint after the state machine ran.

An alert joins an incident when it fires (or is explained by an alert that has one):

* an explained alert joins its carrier's incident (``explained`` lists it: slice, detector);
* a firing alert joins an open incident of the same model whose version matches and whose
  slice is the alert's, contains it by name (the incident then narrows to the alert's slice), or
  is already explained by the incident. An alert on ``all`` of a version joins that version's
  open incident of a failing version comparison (the version is the cause; the incident's slice
  becomes ``all``). Versions match when equal; an SLO alert (version ``*``:
  SLOs span versions) matches any incident, and an incident of SLO alerts only matches any
  version. Otherwise it opens a new incident.

Open incidents overlap in time by construction (they close when their last alert closes), so
"overlapping windows" is "while the incident is open". Severity is the worst member's.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from monitor.alerting.explain import contains_by_name
from monitor.alerting.slo.hook import ALL_VERSIONS
from monitor.alerting.slo.hook import DETECTOR as SLO_DETECTOR
from monitor.store import incidents as store
from monitor.store.alerts import Alert
from monitor.store.incidents import SEVERITY_RANK, Incident
from slices import ALL


def related(inc: Incident, model: str, version: str, slice_: str, detector: str = "",
            version_causes: frozenset[str] = frozenset()) -> bool:
    """Whether a firing alert on (model, version, slice) of ``detector`` can belong to this open
    incident (``version_causes``: detectors whose alerts are about the whole version)."""
    slo_only = set(inc.detectors) <= {SLO_DETECTOR}
    if inc.model != model or not (inc.model_version == version or version == ALL_VERSIONS
                                  or slo_only):
        return False
    if (detector in version_causes and inc.model_version == version
            and detector in inc.detectors):
        return True  # one version compared with its baseline on several slices: one cause
    if slice_ == ALL and inc.model_version == version and version_causes & set(inc.detectors):
        return True  # the version under a failing comparison drifts as a whole: same cause
    return (inc.slice == slice_ or contains_by_name(inc.slice, slice_)
            or any(e.get("slice") == slice_ for e in inc.explained))


def assign(conn: Connection, alerts: Sequence[Alert], last_window: dict[int, int],
           version_causes: frozenset[str] = frozenset()) -> list[Incident]:
    """Give every firing or explained alert of this checkpoint its incident (new alerts must
    already have ids); returns the incidents touched, saved, with their state brought up to
    date once the alerts are saved (:func:`close_finished`). ``last_window``: alert id -> the
    newest window observed for it in this checkpoint; ``version_causes``: the detectors whose
    alerts concern a whole version (canary comparisons)."""
    # open ones, and those that fired and resolved within this checkpoint (a catch-up
    # checkpoint spans many windows): each fired alert belongs to an incident
    live = [a for a in alerts if a.state.state in ("firing", "explained")
            or (a.fired_window_ms is not None and a.incident_id is None)]
    if not live:
        return []
    incidents = store.load_open(conn, sorted({a.labels["model"] for a in live}))
    by_id = {i.id: i for i in incidents}
    alert_by_id = {a.id: a for a in alerts}
    touched: dict[int, Incident] = {}
    # carriers first, so the alerts they explain find their incident
    for a in sorted(live, key=lambda a: (a.state.state == "explained", a.first_window_ms, a.id)):
        lab = a.labels
        inc = by_id.get(a.incident_id) if a.incident_id is not None else None
        if inc is None and a.explained_by_alert_id is not None:
            carrier = alert_by_id.get(a.explained_by_alert_id)
            if carrier is not None and carrier.incident_id is not None:
                inc = by_id.get(carrier.incident_id)
        if inc is None and a.state.state != "explained":
            # an incident holding an alert this one explains, else any related open incident
            explained_ids = {x.incident_id for x in alerts
                             if x.explained_by_alert_id == a.id and x.incident_id is not None}
            inc = next((i for i in incidents if i.id in explained_ids), None) or next(
                (i for i in incidents if related(i, lab["model"], lab["model_version"],
                                                 lab["slice"], lab["detector"], version_causes)),
                None)
        if inc is None:
            if a.state.state == "explained":
                continue  # explained by an alert that has not fired: nothing to join yet
            inc = Incident(None, lab["model"], lab["model_version"], lab["slice"], "open",
                           a.severity, a.first_window_ms, a.state.last_window_ms or 0)
            store.save(conn, [inc])
            incidents.append(inc)
            by_id[inc.id] = inc
        _add(inc, a, last_window.get(a.id, a.state.last_window_ms or 0), version_causes)
        if a.incident_id != inc.id:
            a.incident_id, a.changed = inc.id, True
        touched[inc.id] = inc  # type: ignore[index]
    out = list(touched.values())
    store.save(conn, out)
    return out


def _add(inc: Incident, a: Alert, window_ms: int,
         version_causes: frozenset[str] = frozenset()) -> None:
    lab = a.labels
    if lab["model_version"] != ALL_VERSIONS and inc.model_version != lab["model_version"]:
        slo_only = set(inc.detectors) <= {SLO_DETECTOR}
        inc.model_version = lab["model_version"] if slo_only else ALL_VERSIONS
    if a.state.state == "explained":
        entry = {"alert_id": a.id, "slice": lab["slice"], "detector": lab["detector"],
                 "alertname": a.rule, "explained_by": a.explained_by}
        inc.explained = [e for e in inc.explained if e.get("alert_id") != a.id] + [entry]
    else:
        version_wide = bool(version_causes & set(inc.detectors)) and inc.slice == ALL
        if lab["detector"] in version_causes and inc.detectors and not (
                inc.slice == lab["slice"] or contains_by_name(inc.slice, lab["slice"])
                or contains_by_name(lab["slice"], inc.slice)):
            inc.slice = ALL  # the version's comparison fails on unrelated slices: the version
        elif lab["slice"] == ALL and version_causes & set(inc.detectors):
            inc.slice = ALL  # the whole version drifts beside its failing comparison
        elif contains_by_name(inc.slice, lab["slice"]) and not version_wide:
            inc.slice = lab["slice"]  # the more specific slice carries the incident
        inc.explained = [e for e in inc.explained if e.get("alert_id") != a.id]
        if SEVERITY_RANK.get(a.severity, 0) > SEVERITY_RANK.get(inc.severity, 0):
            inc.severity = a.severity
    if lab["detector"] not in inc.detectors:
        inc.detectors.append(lab["detector"])
    inc.first_window_ms = min(inc.first_window_ms, a.first_window_ms)
    inc.last_window_ms = max(inc.last_window_ms, window_ms)
    inc.changed = True


def close_finished(conn: Connection, alerts: Sequence[Alert]) -> list[Incident]:
    """Resolve the open incidents of these alerts that no longer hold an open alert."""
    ids = sorted({a.incident_id for a in alerts if a.incident_id is not None})
    if not ids:
        return []
    still = store.open_members(conn, ids)
    done = [i for i in ids if not still.get(i)]
    if not done:
        return []
    models = sorted({a.labels["model"] for a in alerts if a.incident_id in done})
    closing = [i for i in store.load_open(conn, models) if i.id in done]
    for inc in closing:
        ends = [a.resolved_window_ms or a.state.last_window_ms or 0 for a in alerts
                if a.incident_id == inc.id]
        inc.state, inc.changed = "resolved", True
        inc.resolved_window_ms = max([inc.last_window_ms, *ends])
    store.save(conn, closing)
    return closing
