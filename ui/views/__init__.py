"""The UI's pages: each module has ``render(ctx)`` and reads data only through ``ui.store``."""
