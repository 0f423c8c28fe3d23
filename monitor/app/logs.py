"""Structured log lines: ``ts=... level=... logger=... msg="..."``, one event per line."""

from __future__ import annotations

import logging
import sys
import time


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (f"ts={ts}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
                f"logger={record.name} msg=\"{record.getMessage()}\"")
        if record.exc_info:
            line += " exc=" + repr(self.formatException(record.exc_info))
        return line


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kafka", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
