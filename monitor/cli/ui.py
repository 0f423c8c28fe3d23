"""``vitmon ui``: the Streamlit UI."""

from __future__ import annotations

import argparse

from monitor.app.config import Settings
from monitor.cli.common import Subparsers, command


def cmd_ui(args: argparse.Namespace, settings: Settings) -> int:
    from ui import launch

    launch.run(settings, args.config, args.host, args.port)
    return 0  # not reached: the process became the Streamlit server


def register(sub: Subparsers) -> None:
    p = command(sub, "ui", "the Streamlit UI (headless, on ui.host:ui.port)", cmd_ui)
    p.add_argument("--host", help="listen address (default ui.host)")
    p.add_argument("--port", type=int, help="port (default ui.port, 8501)")
