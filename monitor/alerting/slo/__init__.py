"""Service level objectives: specs (:mod:`.spec`), burn-rate maths (:mod:`.burn`), the checkpoint
hook that counts good/total events in 1-minute event-time buckets (:mod:`.hook`), and the
Prometheus rules export (:mod:`.promrules`). Part of the alerting layer: may import
:mod:`monitor.core`, :mod:`monitor.store`, the contract and errors. Importing this package
imports nothing heavy."""
