"""REPORT over HTTP: /metrics for Prometheus, /healthz and /readyz for the orchestrator, /proposals.

Health counts only passes that saw the fleet (a pass that could read nothing is not a finished pass):
`/healthz` fails until the first such pass, and again when none has finished for
`max_pass_age_seconds`, so a wedged or blind agent is restarted; `/readyz` is green while the latest
pass saw the fleet. `/proposals` shows what each change touches and nothing else of a task
definition: no environment variables, no secrets.

The server is small on purpose: a fixed pool of worker threads, a listen backlog, a read timeout on
every connection, and a busy answer (503) when every worker is taken. Running out of file
descriptors makes it refuse connections for a moment; it never stops the agent.
"""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent.report import printable

if TYPE_CHECKING:
    from agent.metrics import Metrics

WORKERS = 8  # probes, a scrape and a person reading /proposals at once; more only queue
PENDING = 16  # connections accepted and waiting for a worker; beyond that, 503 at once
BACKLOG = 128  # connections the kernel holds before the server accepts them
READ_TIMEOUT_SECONDS = 10.0  # a client that sends nothing is dropped after this
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_TEXT = "text/plain; charset=utf-8"

ENDPOINTS = {
    "/metrics": "Prometheus metrics",
    "/healthz": "liveness: 200 while a pass that saw the fleet finished recently",
    "/readyz": "readiness: 200 while the latest pass saw the fleet",
    "/proposals": "the latest pass's proposals, as JSON (task-definition content limited to what the change touches)",
}


@dataclass
class Health:
    """What the probes report; updated by the loop after every pass."""

    max_pass_age_seconds: float
    clock: Callable[[], float] = time.monotonic
    last_pass: float | None = None  # when the last pass that saw the fleet finished
    last_result: str | None = None  # ok | partial | error, of the latest pass whatever it saw
    last_problem: str = ""
    proposals: Callable[[], list[dict[str, Any]]] = list
    verdicts: Callable[[], list[dict[str, Any]]] = list  # the latest verdicts on the agent's changes
    started: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.started is None:
            self.started = self.clock()

    def pass_finished(self, result: str = "ok", problem: str = "") -> None:
        """Record a pass: `ok` and `partial` saw the fleet; `error` saw nothing and counts as no pass."""
        with self._lock:
            self.last_result, self.last_problem = result, problem
            if result != "error":
                self.last_pass = self.clock()

    @property
    def ready(self) -> bool:
        with self._lock:
            return self.last_pass is not None and self.last_result != "error"

    def healthy(self) -> tuple[bool, str]:
        with self._lock:
            last, result, problem, started = self.last_pass, self.last_result, self.last_problem, self.started
        now = self.clock()
        latest = f"; latest pass: {result}" + (f" ({problem})" if problem else "") if result else ""
        if last is None:
            return False, f"starting: no pass has seen the fleet yet ({now - (started or now):.0f} s){latest}"
        age = now - last
        if age > self.max_pass_age_seconds:
            return False, (
                f"no pass has seen the fleet for {age:.0f} s (limit {self.max_pass_age_seconds:.0f} s){latest}"
            )
        return True, f"last pass that saw the fleet {age:.0f} s ago{latest}"

    def readiness(self) -> tuple[bool, str]:
        with self._lock:
            last, result, problem = self.last_pass, self.last_result, self.last_problem
        if last is None:
            return False, "not ready: no pass has seen the fleet yet"
        if result == "error":
            return False, "not ready: the latest pass saw nothing" + (f" ({problem})" if problem else "")
        return True, "ready"


def _handler(metrics: Metrics, health: Health, read_timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ecs-medic"
        sys_version = ""
        timeout = read_timeout  # StreamRequestHandler sets it on the socket: reads never hang

        def do_GET(self) -> None:
            self._answer(head=False)

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def _answer(self, *, head: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST, head=head)
            elif path == "/healthz":
                ok, why = health.healthy()
                self._send(200 if ok else 503, (why + "\n").encode(), _TEXT, head=head)
            elif path == "/readyz":
                ready, why = health.readiness()
                self._send(200 if ready else 503, (why + "\n").encode(), _TEXT, head=head)
            elif path == "/proposals":
                # A proposal's commands name what they read (a revision) and set only what the change
                # touches: a task definition's environment and secrets are never part of them.
                shown = {"proposals": health.proposals(), "verdicts": health.verdicts()}
                body = json.dumps(shown, indent=2, default=str).encode()
                self._send(200, body + b"\n", "application/json", head=head)
            elif path == "/":
                lines = ["ecs-medic", "", *(f"{name:<12}{what}" for name, what in ENDPOINTS.items())]
                self._send(200, ("\n".join(lines) + "\n").encode(), _TEXT, head=head)
            else:
                self._error(404, f"not found: {printable(path)}; try {', '.join(ENDPOINTS)} or /", head=head)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """The standard library's errors are HTML pages; ours are one line of text (or JSON if asked)."""
            del explain
            status = HTTPStatus(code)
            self.close_connection = True
            allowed = {"Allow": "GET, HEAD"} if code in (405, 501) else {}
            what = message or status.phrase
            if code == 501:  # an unsupported method: to a client, that is "not allowed here"
                code, what = 405, f"method {self.command} not allowed; use GET or HEAD"
            self._error(code, what, head=self.command == "HEAD", headers=allowed)

        def _error(self, code: int, message: str, *, head: bool, headers: dict[str, str] | None = None) -> None:
            headers_in = getattr(self, "headers", None)  # absent when the request line itself was bad
            if headers_in is not None and "application/json" in headers_in.get("Accept", ""):
                body, content_type = json.dumps({"error": message, "status": code}).encode() + b"\n", "application/json"
            else:
                body, content_type = (message + "\n").encode(), _TEXT
            self._send(code, body, content_type, head=head, headers=headers)

        def _send(
            self, status: int, body: bytes, content_type: str, *, head: bool, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ANN401 - the stdlib's signature
            del format, args  # probes every few seconds would drown the agent's own log lines

    return Handler


_BUSY_BODY = b"busy: every worker is answering\n"
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\n".encode()
    + b"Retry-After: 1\r\nConnection: close\r\n\r\n"
    + _BUSY_BODY
)


class _BoundedServer(HTTPServer):
    """HTTPServer with a fixed pool of workers instead of a thread per connection."""

    request_queue_size = BACKLOG
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], workers: int) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ecs-medic-http")
        self._slots = threading.BoundedSemaphore(workers + PENDING)
        self._open: set[socket.socket] = set()  # connections a worker holds or will take
        self._open_lock = threading.Lock()
        self.refused = 0  # connections answered "busy" or dropped for want of descriptors

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as error:
            if error.errno in _OUT_OF_DESCRIPTORS:
                # The connection stays in the backlog; pause instead of spinning on accept().
                self.refused += 1
                time.sleep(0.2)
            raise

    def process_request(self, request: Any, client_address: Any) -> None:  # noqa: ANN401 - socketserver's types
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        with self._open_lock:
            self._open.add(request)
        try:
            self._pool.submit(self._work, request, client_address)
        except RuntimeError:  # no thread could be started: answer busy rather than fail
            with self._open_lock:
                self._open.discard(request)
            self._slots.release()
            self._refuse(request)

    def _refuse(self, request: Any) -> None:  # noqa: ANN401
        self.refused += 1
        try:
            request.settimeout(1.0)
            request.sendall(_BUSY)
        except OSError:
            pass
        self.shutdown_request(request)

    def _work(self, request: Any, client_address: Any) -> None:  # noqa: ANN401
        # An exception here (a client that hung up mid-answer) stays in the future, which nobody reads:
        # one client's broken connection is nobody else's problem.
        try:
            self.finish_request(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ANN401
        del request, client_address  # a client hanging up mid-answer is not worth a traceback

    def server_close(self) -> None:
        super().server_close()
        with self._open_lock:  # a worker waiting on an idle client returns at once: shutdown never waits
            for request in self._open:
                with contextlib.suppress(OSError):
                    request.shutdown(socket.SHUT_RDWR)
        self._pool.shutdown(wait=False, cancel_futures=True)


class StatusServer:
    """The HTTP endpoints, served from a daemon thread."""

    def __init__(
        self,
        metrics: Metrics,
        health: Health,
        port: int,
        host: str = "0.0.0.0",  # noqa: S104 - probes and scrapes come from outside the container
        *,
        workers: int = WORKERS,
        read_timeout: float = READ_TIMEOUT_SECONDS,
    ) -> None:
        self._server = _BoundedServer((host, port), _handler(metrics, health, read_timeout), workers)
        self._thread = threading.Thread(target=self._server.serve_forever, name="ecs-medic-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def refused(self) -> int:
        return self._server.refused

    @property
    def backlog(self) -> int:
        return int(self._server.request_queue_size)

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
