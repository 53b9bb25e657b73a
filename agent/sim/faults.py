"""Faults on demand: throttling, server errors, latency, resets, lost answers and hangs, per operation,
at a set rate or at a chosen call.

Errors are shaped as AWS shapes them, so SDK retry logic and error parsing see the real thing:
JSON protocols get HTTP 400 `{"__type":"ThrottlingException","message":"Rate exceeded"}`; query
protocols (Auto Scaling, ELBv2, IAM) an XML `Throttling` error; EC2 its own `RequestLimitExceeded`.
Decisions come from one seeded RNG, so a run is reproducible.

Faults that sever the connection model the network, not AWS: `reset` drops it before the request is
carried out; `lost_response` carries the request out and then drops it, so the client cannot tell
whether it happened; `hang` carries it out and holds the answer until `release()` (a test kills the
client meanwhile, at exactly that point).
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from dataclasses import dataclass, replace
from enum import StrEnum
from xml.sax.saxutils import escape

from agent.sim import wording


class FaultKind(StrEnum):
    THROTTLE = "throttle"
    SERVER_ERROR = "server_error"
    LATENCY = "latency"
    RESET = "reset"  # the connection drops before the request is carried out
    LOST_RESPONSE = "lost_response"  # carried out, then the connection drops: the answer is lost
    HANG = "hang"  # carried out, then the answer is held until release()

    @property
    def severs(self) -> bool:
        return self in (FaultKind.RESET, FaultKind.LOST_RESPONSE, FaultKind.HANG)


class Protocol(StrEnum):
    JSON = "json"
    QUERY = "query"
    EC2 = "ec2"


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Inject `kind` into requests for `operation` (any when None) of `service` (any when None) with
    probability `rate`; `latency_seconds` for latency; `remaining` caps how many times (None: no cap);
    the first `skip` matching requests pass untouched (a fault at the n-th call: skip n - 1)."""

    kind: FaultKind
    operation: str | None = None
    service: str | None = None
    rate: float = 1.0
    latency_seconds: float = 0.0
    remaining: int | None = None
    skip: int = 0

    def applies_to(self, service: str, operation: str) -> bool:
        return (self.operation in (None, operation)) and (self.service in (None, service))


@dataclass(frozen=True, slots=True)
class ErrorReply:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class FaultInjector:
    """The world's fault rules. `add` a rule, `clear` them all; the middleware asks `decide`."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._rng = random.Random(seed)  # noqa: S311 - reproducible, not secret
        self.hanging = threading.Event()  # set while a `hang` fault holds an answer
        self._released = threading.Event()

    def add(
        self,
        *,
        kind: FaultKind | str,
        operation: str | None = None,
        service: str | None = None,
        rate: float = 1.0,
        latency_seconds: float = 0.0,
        count: int | None = None,
        skip: int = 0,
    ) -> FaultRule:
        """Inject faults into matching requests from now on. `rate` is a probability in [0, 1]."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {rate}")
        rule = FaultRule(FaultKind(kind), operation, service, rate, latency_seconds, count, skip)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def release(self) -> None:
        """Let every held answer go (the connection is dropped: its client is gone by then)."""
        self._released.set()

    def hold(self) -> None:
        """Called by the middleware for a `hang`: blocks until release()."""
        self.hanging.set()
        self._released.wait()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def decide(self, service: str, operation: str) -> list[FaultRule]:
        """The faults to inject into one request: any latency first, then at most one error."""
        chosen: list[FaultRule] = []
        with self._lock:
            for index, rule in enumerate(self._rules):
                if not rule.applies_to(service, operation):
                    continue
                if rule.skip > 0:
                    self._rules[index] = replace(rule, skip=rule.skip - 1)
                    continue
                if rule.remaining is not None and rule.remaining <= 0:
                    continue
                if self._rng.random() >= rule.rate:
                    continue
                if rule.kind is not FaultKind.LATENCY and any(r.kind is not FaultKind.LATENCY for r in chosen):
                    continue
                chosen.append(rule)
                if rule.remaining is not None:
                    self._rules[index] = replace(rule, remaining=rule.remaining - 1)
        return sorted(chosen, key=lambda r: r.kind is not FaultKind.LATENCY)


# Server-side error codes each JSON service models for a 5xx.
_SERVER_ERROR_CODES = {"ecs": "ServerException", "ecr": "ServerException", "logs": "ServiceUnavailableException"}


def error_reply(protocol: Protocol, service: str, kind: FaultKind) -> ErrorReply:
    """The HTTP answer AWS gives for a throttled request or a server error, in the service's protocol."""
    request_id = str(uuid.uuid4())
    if kind is FaultKind.THROTTLE:
        status = 400
        code = {Protocol.JSON: "ThrottlingException", Protocol.QUERY: "Throttling"}.get(
            protocol, "RequestLimitExceeded"
        )
        message = "Request limit exceeded." if protocol is Protocol.EC2 else wording.RATE_EXCEEDED
        if protocol is Protocol.EC2:
            status = 503
    else:
        status = 500
        code = _SERVER_ERROR_CODES.get(service, "InternalFailure") if protocol is Protocol.JSON else "InternalFailure"
        message = "We encountered an internal error. Please try again."
    if protocol is Protocol.JSON:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = (
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-ErrorType", code),
            ("x-amzn-RequestId", request_id),
        )
        return ErrorReply(status, headers, body)
    if protocol is Protocol.EC2:
        xml = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{escape(message)}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
    else:
        fault_type = "Sender" if kind is FaultKind.THROTTLE else "Receiver"
        xml = (
            f"<ErrorResponse><Error><Type>{fault_type}</Type><Code>{code}</Code><Message>{escape(message)}"
            f"</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    return ErrorReply(status, (("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)), xml.encode())


def validation_error(protocol: Protocol, code: str, message: str) -> ErrorReply:
    """A client error (HTTP 400) with AWS's code and message, e.g. Auto Scaling's ValidationError."""
    request_id = str(uuid.uuid4())
    if protocol is Protocol.JSON:
        body = json.dumps({"__type": code, "message": message}).encode()
        return ErrorReply(400, (("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)), body)
    xml = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return ErrorReply(400, (("Content-Type", "text/xml"),), xml.encode())
