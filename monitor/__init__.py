"""vitmon service core: config, ingest, windows, storage, alert engine, metrics, CLI, demo."""
