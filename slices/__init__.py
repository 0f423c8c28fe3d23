"""Slice definitions and vectorised slice-key assignment (pure: no I/O). Imports nothing of
vitmon but itself and :mod:`monitor.contract` (import-linter's ``pure-plugins`` contract)."""

from slices.assign import ALL, MISSING, OTHER, Dimension, SliceCatalog, assign, dimensions
from slices.names import attribute_values, format_conditions, group_labels, parse, quantile_edges

__all__ = ["ALL", "MISSING", "OTHER", "Dimension", "SliceCatalog", "assign", "dimensions",
           "attribute_values", "format_conditions", "group_labels", "parse", "quantile_edges"]
