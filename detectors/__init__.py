"""The built-in detector plugins, registered under the entry-point group ``vitmon.detectors``
exactly like third-party ones, with the pure statistics behind them (:mod:`.stats`), reference
profile builders and helpers for tests and doctests. May import only :mod:`monitor.contract`,
``slices`` and numerical libraries (numpy, scipy, torch, scikit-learn): no I/O library and
nothing else of ``monitor`` (import-linter's ``pure-plugins`` contract)."""
