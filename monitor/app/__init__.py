"""The service assembled: typed settings from YAML and ``VITMON_*`` (:mod:`.config`), log
lines (:mod:`.logs`), and the wiring of settings into database, broker clients, detectors,
checkpoint hooks and consumer (:mod:`.service`). Only wires; may import the alerting, core and
store layers, the contract and errors, never ``detectors`` (they come from entry points)."""
