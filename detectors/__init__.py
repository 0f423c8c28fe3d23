"""Built-in detector plugins. Registered under the entry-point group `vitmon.detectors`."""
