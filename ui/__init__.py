"""The Streamlit UI: pages (:mod:`.views`) that read PostgreSQL only through the narrow query
module (:mod:`.queries`, frozen dataclasses, the only SQL outside ``monitor/store``), cached per
process (:mod:`.store`), with every view addressable by URL (:mod:`.links`). An outer layer: may
import ``monitor`` (settings, the store's connections, the reports) and ``detectors`` (the
fairness audit's types); only ``monitor.cli`` imports it (``vitmon ui``)."""
