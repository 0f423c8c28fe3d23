"""Detector discovery: built-ins and third-party plugins alike, from the entry-point group
``vitmon.detectors``. Loaded by an explicit call, never at import time."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from monitor.contract import ENTRY_POINT_GROUP, Detector
from monitor.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PluginInfo:
    name: str
    version: int
    target: str  # "module:Class"
    distribution: str
    summary: str


def discover() -> dict[str, tuple[PluginInfo, type]]:
    """Every registered detector class by entry-point name."""
    found: dict[str, tuple[PluginInfo, type]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        doc = (cls.__doc__ or "").strip().splitlines()
        dist = ep.dist.name if ep.dist is not None else "?"
        info = PluginInfo(ep.name, int(getattr(cls, "version", 0)), ep.value, dist,
                          doc[0] if doc else "")
        found[ep.name] = (info, cls)
    return dict(sorted(found.items()))


def load_detectors(enabled: tuple[str, ...] | None,
                   params: Mapping[str, Mapping[str, Any]]) -> list[Detector]:
    """Instantiate the enabled detectors with their configured parameters.

    Unknown names in ``enabled`` or ``params`` and rejected parameters are configuration
    errors, reported at start with the setting that names them."""
    available = discover()
    names = list(available) if enabled is None else list(enabled)
    for name in names:
        if name not in available:
            raise ConfigError("detectors.enabled",
                              f"no detector plugin named {name!r}; found {', '.join(available)}")
    for name in params:
        if name not in available:
            raise ConfigError(f"detectors.params.{name}", "no detector plugin of that name")
    detectors = []
    for name in names:
        cls = available[name][1]
        try:
            det = cls(**dict(params.get(name, {})))
        except (TypeError, ValueError) as exc:  # an unknown parameter, or a bad value
            raise ConfigError(f"detectors.params.{name}", str(exc)) from None
        if not isinstance(det, Detector):
            raise ConfigError("detectors.enabled", f"{name} does not implement the detector contract")
        detectors.append(det)
    log.info("detectors loaded names=%s", ",".join(d.name for d in detectors))
    return detectors
