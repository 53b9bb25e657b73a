"""REPORT over HTTP: /metrics for Prometheus, /healthz and /readyz for the orchestrator, /proposals.

`/healthz` fails when no pass has finished recently, so a wedged agent is restarted; `/readyz` turns
green after the first pass, so a new replica is not counted before it has looked at anything.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from agent.metrics import Metrics


@dataclass
class Health:
    """What the probes report; updated by the loop after every pass."""

    max_pass_age_seconds: float
    clock: Callable[[], float] = time.monotonic
    last_pass: float | None = None
    proposals: Callable[[], list[dict[str, Any]]] = list
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pass_finished(self) -> None:
        with self._lock:
            self.last_pass = self.clock()

    @property
    def ready(self) -> bool:
        return self.last_pass is not None

    def healthy(self) -> tuple[bool, str]:
        with self._lock:
            last = self.last_pass
        if last is None:
            return True, "starting: no pass finished yet"
        age = self.clock() - last
        if age > self.max_pass_age_seconds:
            return False, f"no pass finished for {age:.0f} s (limit {self.max_pass_age_seconds:.0f} s)"
        return True, f"last pass {age:.0f} s ago"


def _handler(metrics: Metrics, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok, why = health.healthy()
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain; charset=utf-8")
            elif path == "/readyz":
                ready = health.ready
                body = b"ready\n" if ready else b"not ready: no pass finished yet\n"
                self._send(200 if ready else 503, body, "text/plain; charset=utf-8")
            elif path == "/proposals":
                body = json.dumps({"proposals": health.proposals()}, indent=2).encode()
                self._send(200, body, "application/json")
            else:
                self._send(404, b"not found: try /metrics, /healthz, /readyz or /proposals\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401 - the stdlib's signature
            del format, args  # probes every few seconds would drown the agent's own log lines

    return Handler


class StatusServer:
    """The HTTP endpoints, served from a daemon thread."""

    def __init__(self, metrics: Metrics, health: Health, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104
        self._server = ThreadingHTTPServer((host, port), _handler(metrics, health))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="ecs-medic-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
