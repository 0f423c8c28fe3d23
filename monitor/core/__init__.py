"""The streaming core: Kafka in (:mod:`.kafka`), decode and validate (:mod:`.ingest`),
event-time windows and slices (:mod:`.windows`), the detector registry (:mod:`.registry`), the
checkpoint procedure (:mod:`.checkpoint`) and its evaluation of closed windows
(:mod:`.evaluation`), the consume loop (:mod:`.consumer`, with :mod:`.log_ends`), retention,
Prometheus metrics and the settings sections it reads. It knows the detector contract and entry
points, never a detector's name; it may import :mod:`monitor.store`, :mod:`monitor.contract`,
:mod:`monitor.errors`, ``slices`` and libraries -- never ``detectors``, alerting, app or outer."""
