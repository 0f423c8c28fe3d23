"""Liveness and readiness, served beside ``/metrics`` on the metrics port.

- ``GET /healthz``: 200 while the poll loop advances (it polled, or is waiting on PostgreSQL with
  retries, within ``stall_s``); 503 when it is stuck. For a liveness probe.
- ``GET /readyz``: 200 when the broker answered within ``broker_stale_s``, PostgreSQL answers
  (checked at most every 2 s) and the consumer has partitions assigned; else 503. For a
  readiness probe.

Both answer a small JSON object saying what was checked. Anything else is the Prometheus
exposition of the registry (as ``prometheus_client.start_http_server`` serves it).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

DB_CHECK_EVERY_S = 2.0


class Health:
    """What the consume loop reports (``beat``, ``broker_ok``, ``assigned``) and the checks."""

    def __init__(self, stall_s: float, broker_stale_s: float,
                 db_check: Callable[[], str | None]) -> None:
        self.stall_s, self.broker_stale_s = stall_s, broker_stale_s
        self._db_check = db_check
        now = time.monotonic()
        self.beat_at, self.broker_at = now, float("-inf")
        self.assigned = 0
        self._db: tuple[float, str | None] = (float("-inf"), "not checked")
        self._lock = threading.Lock()

    def beat(self) -> None:
        self.beat_at = time.monotonic()

    def broker_ok(self) -> None:
        self.broker_at = time.monotonic()

    def live(self) -> tuple[bool, dict[str, Any]]:
        since = time.monotonic() - self.beat_at
        return since <= self.stall_s, {"last_poll_s": round(since, 1), "stall_s": self.stall_s}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        broker_age = time.monotonic() - self.broker_at
        db = self._database()
        body = {"broker": broker_age <= self.broker_stale_s, "database": db is None,
                "partitions": self.assigned}
        if db is not None:
            body["database_error"] = db
        return bool(body["broker"] and body["database"] and self.assigned), body

    def _database(self) -> str | None:
        with self._lock:  # one check at a time, reused for DB_CHECK_EVERY_S
            at, result = self._db
            if time.monotonic() - at >= DB_CHECK_EVERY_S:
                result = self._db_check()
                self._db = (time.monotonic(), result)
            return result


def serve_http(host: str, port: int, registry: CollectorRegistry, health: Health) -> ThreadingHTTPServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on a daemon thread; returns the server."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            path = self.path.split("?", 1)[0]
            if path in ("/healthz", "/readyz"):
                ok, body = health.live() if path == "/healthz" else health.ready()
                self._send(200 if ok else 503, "application/json",
                           json.dumps({"ok": ok, **body}).encode())
            else:
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))

        def _send(self, code: int, ctype: str, data: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: Any) -> None:  # probes every few seconds: no access log
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
