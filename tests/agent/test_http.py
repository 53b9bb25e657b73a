"""The HTTP endpoints: probes that tell the truth, HEAD, plain errors, a bounded server."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest
from prometheus_client import CollectorRegistry

from agent.http import BACKLOG, PENDING, Health, StatusServer
from agent.metrics import Metrics


class Clock:
    """Monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def health(clock):
    return Health(max_pass_age_seconds=120, clock=clock)


@pytest.fixture
def server(health):
    started = StatusServer(Metrics(CollectorRegistry()), health, 0, host="127.0.0.1").start()
    yield started
    started.stop()


def request(server, method, path, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def test_healthz_fails_until_a_pass_has_seen_the_fleet(server, health):
    status, _, body = request(server, "GET", "/healthz")
    assert (status, body) == (503, "starting: no pass has seen the fleet yet (0 s)\n")
    health.pass_finished("error", "ListClusters: EndpointConnectionError")
    status, _, body = request(server, "GET", "/healthz")
    assert status == 503
    assert (
        body
        == "starting: no pass has seen the fleet yet (0 s); latest pass: error (ListClusters: EndpointConnectionError)\n"
    )
    assert request(server, "GET", "/readyz")[0] == 503
    health.pass_finished("partial", "DescribeTasks: throttled")
    assert request(server, "GET", "/healthz")[0] == 200
    assert request(server, "GET", "/readyz")[:3:2] == (200, "ready\n")


def test_passes_that_see_nothing_do_not_keep_the_agent_alive(server, health, clock):
    health.pass_finished("ok")
    for _ in range(5):  # a minute of blind passes: still alive (a short outage), but not ready
        clock.now += 30
        health.pass_finished("error", "ListClusters: EndpointConnectionError")
    status, _, body = request(server, "GET", "/healthz")
    assert status == 503
    assert body.startswith("no pass has seen the fleet for 150 s (limit 120 s); latest pass: error")
    status, _, body = request(server, "GET", "/readyz")
    assert (status, body) == (503, "not ready: the latest pass saw nothing (ListClusters: EndpointConnectionError)\n")
    health.pass_finished("ok")
    assert request(server, "GET", "/healthz")[0] == 200


def test_head_answers_like_get_without_a_body(server, health):
    health.pass_finished("ok")
    status, headers, body = request(server, "HEAD", "/healthz")
    assert (status, body) == (200, "")
    assert int(headers["Content-Length"]) > 0
    assert request(server, "HEAD", "/metrics")[0] == 200


def test_errors_are_plain_text_or_json_never_html(server):
    status, headers, body = request(server, "POST", "/healthz")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
    assert headers["Content-Type"].startswith("text/plain")
    assert body == "method POST not allowed; use GET or HEAD\n"
    status, headers, body = request(server, "DELETE", "/proposals", {"Accept": "application/json"})
    assert (status, headers["Content-Type"]) == (405, "application/json")
    assert json.loads(body) == {"error": "method DELETE not allowed; use GET or HEAD", "status": 405}
    status, _, body = request(server, "GET", "/nope")
    assert status == 404
    assert body == "not found: /nope; try /metrics, /healthz, /readyz, /proposals or /\n"
    assert "<html" not in body.lower()


def test_root_lists_the_endpoints(server):
    status, headers, body = request(server, "GET", "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    for endpoint in ("/metrics", "/healthz", "/readyz", "/proposals"):
        assert f"\n{endpoint} " in body


def test_metrics_have_no_created_series(server):
    body = request(server, "GET", "/metrics")[2]
    assert "ecs_medic_reconcile_passes_total" in body
    assert "_created" not in body


def _idle_connections(port, count):
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sockets.append(sock)
    return sockets


def test_every_worker_taken_means_busy_at_once_not_a_hang():
    health = Health(max_pass_age_seconds=120)
    health.pass_finished("ok")
    server = StatusServer(Metrics(CollectorRegistry()), health, 0, host="127.0.0.1", workers=2, read_timeout=30).start()
    idle = _idle_connections(server.port, 2 + PENDING)  # each holds a worker or a queue slot, sending nothing
    try:
        deadline = time.monotonic() + 5
        status = 0
        while time.monotonic() < deadline and status != 503:  # until the server has accepted the idle ones
            status = request(server, "GET", "/healthz")[0]
        assert status == 503
        started = time.monotonic()
        status, headers, body = request(server, "GET", "/healthz")
        assert (status, body) == (503, "busy: every worker is answering\n")
        assert headers["Retry-After"] == "1"
        assert time.monotonic() - started < 2
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and request(server, "GET", "/healthz")[0] != 200:
        time.sleep(0.05)  # the workers see the closed connections and come back
    assert request(server, "GET", "/healthz")[0] == 200
    assert server.refused >= 1
    server.stop()


def test_a_client_that_sends_nothing_is_dropped_after_the_read_timeout():
    server = StatusServer(Metrics(CollectorRegistry()), Health(120), 0, host="127.0.0.1", read_timeout=0.5).start()
    try:
        [sock] = _idle_connections(server.port, 1)
        started = time.monotonic()
        sock.settimeout(5)
        assert sock.recv(1024) == b""  # the server closed it
        assert 0.4 < time.monotonic() - started < 4
        sock.close()
    finally:
        server.stop()


def test_the_listen_backlog_is_real():
    assert BACKLOG >= 128
    server = StatusServer(Metrics(CollectorRegistry()), Health(120), 0, host="127.0.0.1")
    try:
        assert server.backlog == BACKLOG
    finally:
        server.stop()


def test_listens_on_ipv6_when_asked():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        server = StatusServer(Metrics(CollectorRegistry()), Health(120), 0, host="::1").start()
    except OSError as error:
        pytest.skip(f"IPv6 loopback unavailable: {error}")
    try:
        connection = http.client.HTTPConnection("::1", server.port, timeout=5)
        connection.request("GET", "/")
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        server.stop()


def test_stopping_does_not_wait_for_idle_clients():
    server = StatusServer(Metrics(CollectorRegistry()), Health(120), 0, host="127.0.0.1", read_timeout=30).start()
    idle = _idle_connections(server.port, 3)
    try:
        time.sleep(0.3)  # the server accepts them (another thread's work, not simulated time)
        started = time.monotonic()
        server.stop()
        for sock in idle:
            sock.settimeout(5)
            assert sock.recv(1024) == b""  # closed by the server, long before the 30 s read timeout
        assert time.monotonic() - started < 3
    finally:
        for sock in idle:
            sock.close()
