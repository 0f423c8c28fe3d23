"""Slice definitions and vectorised slice-key assignment (pure: no I/O)."""

from slices.assign import ALL, MISSING, OTHER, Dimension, SliceCatalog, assign, dimensions

__all__ = ["ALL", "MISSING", "OTHER", "Dimension", "SliceCatalog", "assign", "dimensions"]
