"""The WSGI layer in front of moto: names each request, records it, injects faults, and lets the world
react to it. Plain WSGI and the AWS wire protocols only; nothing here knows moto's internals.

A request is named by its SigV4 credential scope (the service's signing name and region) and its
operation (`X-Amz-Target` for JSON protocols, `Action=` for query protocols); its account is the one
its access key belongs to (or moto's `X-Moto-Account-Id` header, which the world's own clients send).
Everything that reaches moto does so under the world's lock, so a request never sees the runtime half
way through a tick.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from typing import Protocol as TypingProtocol
from urllib.parse import parse_qs

from agent.sim.faults import FaultInjector, FaultKind, Protocol, error_reply

if TYPE_CHECKING:
    from datetime import datetime
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from agent.sim.recording import RequestLog
    from agent.sim.throttle import Throttle

INTERNAL_HEADER = "X-Ecs-Sim-Internal"
ACCOUNT_HEADER = "X-Moto-Account-Id"  # moto's own way to name the account of a request
_INTERNAL_ENVIRON = "HTTP_X_ECS_SIM_INTERNAL"
_ACCOUNT_ENVIRON = "HTTP_X_MOTO_ACCOUNT_ID"
_SCOPE = re.compile(r"Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
_CBOR_PATH = re.compile(r"^/service/[^/]+/operation/(?P<operation>[^/]+)$")
ECS_TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One AWS API request as the world sees it."""

    service: str
    operation: str
    protocol: Protocol
    region: str
    params: Mapping[str, Any]
    internal: bool
    account: str = ""
    access_key: str = ""


@dataclass(slots=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = field(repr=False)

    def json(self) -> Any:  # noqa: ANN401 - a JSON document of any shape
        return json.loads(self.body or b"{}")


InvokeJson = Callable[[str, Mapping[str, Any]], Reply]


class CallHooks(TypingProtocol):
    """How the world takes part in a request (called under the world's lock)."""

    def before(self, call: ApiCall, invoke: InvokeJson) -> Reply | None:
        """An answer to give instead of moto's (AWS validation moto lacks, an operation the world
        handles itself), or None to pass the request on."""

    def after(self, call: ApiCall, reply: Reply, invoke: InvokeJson) -> bytes | None:
        """React to a successful request; return a replacement body, or None to keep moto's."""


def identify(
    environ: WSGIEnvironment, body: bytes, account_of: Callable[[str], str] = lambda _key: ""
) -> ApiCall | None:
    """Which AWS API a request calls, or None for anything else (moto's own endpoints).
    `account_of(access_key)` names the account a key belongs to."""
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if scope is None:
        return None
    service, region = scope.group("service"), scope.group("region")
    internal = environ.get(_INTERNAL_ENVIRON) == "1"
    key = scope.group("key")
    account = environ.get(_ACCOUNT_ENVIRON) or account_of(key)
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        params = _json_params(body)
        return ApiCall(service, target.rsplit(".", 1)[-1], Protocol.JSON, region, params, internal, account, key)
    cbor = _CBOR_PATH.match(environ.get("PATH_INFO", ""))
    if cbor:
        return ApiCall(service, cbor.group("operation"), Protocol.JSON, region, {}, internal, account, key)
    form = parse_qs(body.decode("utf-8", "replace")) if body else {}
    form = form or parse_qs(environ.get("QUERY_STRING", ""))
    action = form.get("Action", [""])[0]
    if not action:
        return None
    params = {key: values[0] for key, values in form.items()}
    protocol = Protocol.EC2 if service == "ec2" else Protocol.QUERY
    return ApiCall(service, action, protocol, region, params, internal, account, key)


def _json_params(body: bytes) -> Mapping[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _read_body(environ: WSGIEnvironment) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _invoke(app: WSGIApplication, environ: WSGIEnvironment) -> Reply:
    captured: dict[str, Any] = {}
    chunks: list[bytes] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], object]:
        del exc_info
        captured["status"] = int(status.split(" ", 1)[0])
        captured["headers"] = list(headers)
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return Reply(captured["status"], captured["headers"], b"".join(chunks))


def _sever(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """Drop the connection without an answer (a reset, as a network failure or a dead peer causes)."""
    connection = environ.get("werkzeug.socket")
    if connection is not None:
        with contextlib.suppress(OSError):
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.shutdown(socket.SHUT_RDWR)
    start_response("500 ERROR", [("Content-Length", "0")])
    return []


def _respond(
    start_response: StartResponse, status: int, headers: Iterable[tuple[str, str]], body: bytes
) -> list[bytes]:
    kept = [(k, v) for k, v in headers if k.lower() != "content-length"]
    kept.append(("Content-Length", str(len(body))))
    start_response(f"{status} {'OK' if status < 400 else 'ERROR'}", kept)
    return [body]


class WorldMiddleware:
    """Wraps moto's WSGI app: records, injects faults, throttles, validates, then lets the world react."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        lock: threading.RLock,
        faults: FaultInjector,
        log: RequestLog,
        clock: Callable[[], datetime],
        hooks: CallHooks,
        throttle: Throttle | None = None,
        account_of: Callable[[str], str] = lambda _key: "",
    ) -> None:
        self._app = app
        self._lock = lock
        self._faults = faults
        self._log = log
        self._clock = clock
        self._hooks = hooks
        self._throttle = throttle
        self._account_of = account_of

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        body = _read_body(environ)
        call = identify(environ, body, self._account_of)
        if call is None:
            with self._lock:
                reply = _invoke(self._app, environ)
            return _respond(start_response, reply.status, reply.headers, reply.body)
        severed: FaultKind | None = None
        if not call.internal:
            for rule in self._faults.decide(call.service, call.operation):
                if rule.kind is FaultKind.LATENCY:
                    time.sleep(rule.latency_seconds)
                    continue
                if rule.kind is FaultKind.RESET:
                    self._record(call, 0, rule.kind.value)
                    return _sever(environ, start_response)
                if rule.kind.severs:
                    severed = rule.kind
                    continue
                error = error_reply(call.protocol, call.service, rule.kind)
                self._record(call, error.status, rule.kind.value)
                return _respond(start_response, error.status, error.headers, error.body)
            throttle = self._throttle
            if throttle is not None and not throttle.admit(call.account, call.region, call.service, call.operation):
                error = error_reply(call.protocol, call.service, FaultKind.THROTTLE)
                self._record(call, error.status, FaultKind.THROTTLE.value)
                return _respond(start_response, error.status, error.headers, error.body)

        def invoke(operation: str, params: Mapping[str, Any]) -> Reply:
            return self._invoke_json(environ, operation, params)

        with self._lock:
            reply = self._hooks.before(call, invoke) or self._pass_on(call, environ, invoke)
            self._record(call, reply.status, severed.value if severed else None)
        if severed is FaultKind.HANG:
            self._faults.hold()
        if severed is not None:
            return _sever(environ, start_response)
        return _respond(start_response, reply.status, reply.headers, reply.body)

    def _pass_on(self, call: ApiCall, environ: WSGIEnvironment, invoke: InvokeJson) -> Reply:
        reply = _invoke(self._app, environ)
        if reply.status < 300:
            replacement = self._hooks.after(call, reply, invoke)
            if replacement is not None:
                reply.body = replacement
        return reply

    def _record(self, call: ApiCall, status: int, fault: str | None) -> None:
        if not call.internal:
            self._log.append(call.service, call.operation, self._clock(), status, fault, account=call.account)

    def _invoke_json(self, environ: WSGIEnvironment, operation: str, params: Mapping[str, Any]) -> Reply:
        """Call another operation of the same JSON service with the caller's credentials."""
        body = json.dumps(params).encode()
        target = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[0]
        inner: dict[str, Any] = dict(environ)
        inner["wsgi.input"] = io.BytesIO(body)
        inner["CONTENT_LENGTH"] = str(len(body))
        inner["HTTP_X_AMZ_TARGET"] = f"{target}.{operation}"
        return _invoke(self._app, inner)
