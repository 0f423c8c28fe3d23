"""From findings to alerts, inside the checkpoint: SLO burn rates (:mod:`.slo`), version
comparisons for detectors that compare versions (:mod:`.comparisons`), the rules
(:mod:`.rules`, :mod:`.settings`), the state machine (:mod:`.state`) and engine (:mod:`.engine`,
which writes alert state in the checkpoint's transaction), delivery to Alertmanager
(:mod:`.delivery`, a background sender reading the alerts table) and the wiring
(:mod:`.wiring`). May import :mod:`monitor.core`, :mod:`monitor.store`, the contract and errors;
never ``detectors``. Importing this package imports nothing heavy."""
