"""Local webhook receivers, a simulated AWS account, and a notifier's metrics and logs."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from prometheus_client import CollectorRegistry

from agent.aws import AwsGateway
from agent.metrics import Metrics
from agent.sim import World
from tests.sim.times import START

# The path of a real incoming-webhook URL is its credential; the tests check it is never logged.
SECRET_PATH = "/services/T000/B000/s3cr3t-t0ken"


@dataclass
class Receiver:
    """An incoming webhook on 127.0.0.1. `answer(n)` gives the status of the n-th request (1-based);
    with `hold`, each request waits for `release` before it is answered."""

    answer: Callable[[int], int] = lambda _n: 200
    hold: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    requests: list[dict[str, Any]] = field(default_factory=list)  # every request's JSON body, in order
    answered: list[int] = field(default_factory=list)  # statuses given (a timed-out client never read them)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    @property
    def delivered(self) -> list[dict[str, Any]]:
        """The bodies of the requests answered 2xx."""
        return [body for body, status in zip(self.requests, self.answered, strict=False) if status < 300]


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    servers: list[tuple[ThreadingHTTPServer, Receiver]] = []

    def start(**options: Any) -> Receiver:
        receiver = Receiver(**options)
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    receiver.requests.append(body)
                    receiver.headers.append(dict(self.headers))
                    number = len(receiver.requests)
                receiver.arrived.set()
                if receiver.hold:
                    receiver.release.wait(60)
                status = receiver.answer(number)
                with lock:  # recorded before answering: the client may act on the answer at once
                    receiver.answered.append(status)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    return  # the client gave up (a read timeout)

            def log_message(self, *_args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
        servers.append((server, receiver))
        return receiver

    yield start
    for server, receiver in servers:
        receiver.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def sent(metrics: Metrics, channel: str, event: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "ecs_medic_notifications_total", {"channel": channel, "event": event, "outcome": outcome}
    )
    return value or 0.0


@pytest.fixture
def world() -> Iterator[World]:
    with World.start(seed=5, start_time=START) as started:
        yield started


def gateway(world: World, metrics: Metrics, **options: Any) -> AwsGateway:
    env = world.environment
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=world.region,
    )
    return AwsGateway(
        metrics=metrics, session=session, endpoint_url=world.endpoint_url, sleep=lambda _seconds: None, **options
    )


class FakeTime:
    """A clock that moves only when the notifier waits: rate limits and backoff without real waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)
            self.now += seconds
