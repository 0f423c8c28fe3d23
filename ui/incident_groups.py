"""Incidents as the On-call page shows them: from the alert engine's ``incidents`` table
(:func:`from_table`), or, for databases without it, alerts grouped here (:func:`group_alerts`).

One cause is one incident: alerts of the same model, version and detector family (every
``*drift*`` detector is one family: a broken camera moves features, embeddings and predictions
together) whose windows overlap, and whose slices can contain one another, form one incident.
Its slice is the most specific of them (``camera_id=cam-03`` rather than ``region=us-east`` or
``all``); the others are listed as explained by it. Slices of the same attribute with different
values are disjoint, so two broken cameras are two incidents. Pure: no Streamlit, no database.

>>> from ui.queries.ops import Alert
>>> a = lambda i, s, d="feature_drift", first=10, end=None, st="firing": Alert(
...     i, "DriftDetected", "ticket", st, {"model": "m", "model_version": "1", "slice": s,
...     "detector": d}, {}, first, first, first, end, None, None, "sent 1x")
>>> groups = group_alerts([a(1, "all"), a(2, "region=us-east", "embedding_drift"),
...     a(3, "camera_id=cam-03", first=5), a(4, "camera_id=cam-05"),
...     a(5, "all", "slo_burn_rate", 40, 50, "resolved")])
>>> for g in groups:
...     print(g.slice, g.detectors, g.explained_slices, g.state)
camera_id=cam-05 ('feature_drift',) () open
camera_id=cam-03 ('embedding_drift', 'feature_drift') ('all', 'region=us-east') open
all ('slo_burn_rate',) () resolved
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ui.queries.incidents import Incident, IncidentAlert
from ui.queries.ops import Alert

OPEN_STATES = frozenset({"pending", "firing", "suppressed", "explained"})
_SEVERITY = {"page": 2, "ticket": 1}


def family(detector: str) -> str:
    """The cause family of a detector: every drift detector is one."""
    return "drift" if "drift" in detector else detector


def parts(slice_: str) -> dict[str, str]:
    """``region=us-east,device=cpu`` -> ``{'region': 'us-east', 'device': 'cpu'}``."""
    if slice_ in ("", "all"):
        return {}
    return dict(p.split("=", 1) for p in slice_.split(",") if "=" in p)


def disjoint(a: str, b: str) -> bool:
    """No event can be in both slices (they fix one attribute to different values)."""
    pa, pb = parts(a), parts(b)
    return any(k in pb and pb[k] != v for k, v in pa.items())


def _end(a: Alert) -> float:
    if a.state in OPEN_STATES:
        return float("inf")
    return float(a.resolved_window_ms or a.last_window_ms)


@dataclass(frozen=True, slots=True)
class Member:
    """One alert of an incident, for its timeline."""

    alertname: str
    slice: str
    detector: str
    severity: str
    state: str
    first_window_ms: int
    end_window_ms: int | None  # None: still open


@dataclass(frozen=True, slots=True)
class IncidentGroup:
    key: str  # the ``incident`` link parameter (the table's id, or a stable hash)
    model: str
    model_version: str
    slice: str  # the most specific slice: the cause's
    family: str
    state: str  # open | resolved
    severity: str  # the worst of its alerts
    first_window_ms: int
    last_window_ms: int
    resolved_window_ms: int | None
    detectors: tuple[str, ...]
    explained_slices: tuple[str, ...]
    members: tuple[Member, ...]  # the carrier's alerts first
    notification: str  # what Alertmanager was told


def _member(a: Alert) -> Member:
    end = None if a.state in OPEN_STATES else (a.resolved_window_ms or a.last_window_ms)
    return Member(a.rule, a.labels.get("slice", "all"), a.labels.get("detector", ""),
                  a.severity, a.state, a.first_window_ms, end)


def _sent(alerts: Sequence[Alert]) -> str:
    sent = [a for a in alerts if a.delivered.startswith("sent")]
    retrying = [a for a in alerts if a.delivered.startswith("retrying")]
    text = f"{len(sent)} of {len(alerts)} alert(s) sent to Alertmanager"
    return text + (f", {len(retrying)} retrying" if retrying else "")


def from_table(inc: Incident, alerts: Sequence[IncidentAlert]) -> IncidentGroup:
    """An incident of the alert engine's ``incidents`` table, with its alerts."""
    note = inc.notification or {}
    if note.get("posts"):
        group = ", ".join(f"{k}={v}" for k, v in (note.get("group_labels") or {}).items())
        notification = (f"Alertmanager notified {note['posts']}x as one group ({group}), "
                        f"{len(note.get('alerts') or ())} alert(s), last "
                        f"{str(note.get('last_sent_at', ''))[:19]}")
    else:
        notification = "not sent to Alertmanager"
    members = tuple(Member(a.alertname, a.slice, a.detector, a.severity, a.state,
                           a.first_window_ms,
                           None if a.state in OPEN_STATES else a.resolved_window_ms)
                    for a in alerts)
    return IncidentGroup(str(inc.id), inc.model, inc.model_version, inc.slice,
                         "+".join(sorted({family(d) for d in inc.detectors})), inc.state,
                         inc.severity, inc.first_window_ms, inc.last_window_ms,
                         inc.resolved_window_ms, tuple(inc.detectors), inc.explained_slices,
                         members, notification)


def _key(model: str, version: str, fam: str, slice_: str, first: int) -> str:
    return "g" + hashlib.sha256(f"{model}|{version}|{fam}|{slice_}|{first}".encode()
                                ).hexdigest()[:10]


def group_alerts(alerts: Iterable[Alert]) -> list[IncidentGroup]:
    """Incidents of ``alerts``: open first, then by start, newest first."""
    def specificity(a: Alert) -> tuple:
        s = a.labels.get("slice", "all")
        return (-len(parts(s)), a.first_window_ms, s)

    clusters: list[list[Alert]] = []
    for a in sorted(alerts, key=specificity):
        lab = a.labels
        for c in clusters:
            root = c[0].labels
            if ((lab.get("model"), lab.get("model_version"), family(lab.get("detector", "")))
                    == (root.get("model"), root.get("model_version"),
                        family(root.get("detector", "")))
                    and not disjoint(lab.get("slice", "all"), root.get("slice", "all"))
                    and any(a.first_window_ms <= _end(b) and b.first_window_ms <= _end(a)
                            for b in c)):
                c.append(a)
                break
        else:
            clusters.append([a])
    return sorted((_group(c) for c in clusters),
                  key=lambda g: (g.state != "open", -g.first_window_ms, g.key))


def _group(c: Sequence[Alert]) -> IncidentGroup:
    root = c[0].labels
    slice_ = root.get("slice", "all")
    open_ = any(a.state in OPEN_STATES for a in c)
    first = min(a.first_window_ms for a in c)
    return IncidentGroup(
        _key(root.get("model", ""), root.get("model_version", ""),
             family(root.get("detector", "")), slice_, first),
        root.get("model", ""), root.get("model_version", ""), slice_,
        family(root.get("detector", "")), "open" if open_ else "resolved",
        max((a.severity for a in c), key=lambda s: _SEVERITY.get(s, 0)), first,
        max(a.last_window_ms for a in c),
        None if open_ else max(a.resolved_window_ms or a.last_window_ms for a in c),
        tuple(sorted({a.labels.get("detector", "") for a in c})),
        tuple(sorted({a.labels.get("slice", "all") for a in c} - {slice_})),
        tuple(_member(a) for a in c), _sent(c))
