"""The UI's pages: each module has ``render(ctx)`` and reads data only through ``ui.store``
(which runs :mod:`ui.queries`); no SQL here. May import the rest of ``ui``, pandas, Altair and
Streamlit, and result types of ``detectors`` (the fairness audit)."""
