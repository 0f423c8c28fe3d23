"""On-demand reports over what the monitor stored or replayed: reference capture
(:mod:`.reference_capture`), Evidently's drift report (:mod:`.drift_report`), range reports a
detector renders itself such as the fairness audit (:mod:`.fairness_report`), worst-slice
discovery (:mod:`.worst_slices`) and ``vitmon status`` (:mod:`.status`). An outer layer: may
import :mod:`monitor.app` and everything below it, and ``detectors`` for their reference
builders; nothing below imports it."""
