"""``vitmon ui``: run the Streamlit app headless on ``ui.host:ui.port``.

The process *becomes* the Streamlit server (``exec``), so signals reach it directly and a
supervisor (the demo, systemd, a container runtime) stops it like any server.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from monitor.app.config import Settings
from monitor.store.db import check_reachable

APP = Path(__file__).with_name("app.py")


def streamlit_argv(host: str, port: int) -> list[str]:
    """The command line of the Streamlit server for the vitmon app.

    >>> argv = streamlit_argv("127.0.0.1", 8600)
    >>> argv[1:4], argv[argv.index("--server.port") + 1]
    (['-m', 'streamlit', 'run'], '8600')
    """
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.headless", "true", "--server.address", host, "--server.port", str(port),
            # no file watcher: a server does not reload code, and watching costs CPU
            "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
            "--theme.base", "light", "--global.developmentMode", "false"]


def run(settings: Settings, config: str | None, host: str | None, port: int | None) -> None:
    """Check the database, then replace this process with the Streamlit server."""
    check_reachable(settings.required_database_url())  # one clear line now, not an error page later
    if config:  # the app reads settings like every vitmon command: VITMON_CONFIG + VITMON_*
        os.environ["VITMON_CONFIG"] = str(Path(config).resolve())
    argv = streamlit_argv(host or settings.ui.host, port or settings.ui.port)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
