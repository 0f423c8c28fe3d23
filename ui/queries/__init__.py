"""The UI's read model: every query the pages run, returning frozen dataclasses (no SQL in pages).

* :mod:`ui.queries.findings`: models, time extent, detector findings, traffic, discoveries;
* :mod:`ui.queries.labels`: accuracy, coverage, slices, heat maps, versions (predictions x labels);
* :mod:`ui.queries.ops`: consumer lag, rejected events, SLO burn rates, alerts;
* :mod:`ui.queries.incidents`: incidents (alerts of one cause) and their alerts;
* :mod:`ui.queries.samples`: pointers to example inputs;
* :mod:`ui.queries.audit`: the fairness audit of a range (as ``vitmon fairness report``).

Rules every function keeps, so pages stay fast on a large database:

* bounded by the chosen event-time range (``start_ms`` <= window start < ``end_ms``) or by a
  primary key, and served by an index (``uq_findings_key``, ``ix_findings_window``,
  ``ix_findings_status``, ``ix_predictions_model_ts``, primary keys); labels are joined by index
  lookups (``LATERAL``), never by scanning the labels table;
* ``LIMIT``-ed wherever the row count is not bounded by the number of windows;
* read-only, on a connection the caller opens: ``ui/store.py`` caches results for the pages,
  tests call the functions directly.

Imports SQLAlchemy and, for the fairness audit, :mod:`monitor.reports.fairness_report` and the
``fairness`` detector's audit and rendering; never Streamlit.
"""
