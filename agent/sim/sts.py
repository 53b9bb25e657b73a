"""STS in the world: AssumeRole honours the role's trust policy, and its credentials expire on the
simulated clock.

moto hands out credentials for any role ARN, in the role's account. The world first checks, as STS
does, that the role exists in that account and that its trust policy allows the caller's account (or
the caller itself), that `sts:ExternalId` is the one the caller sent and `aws:PrincipalArn` names the
caller; otherwise it answers HTTP 403 `AccessDenied` with STS's wording. Other condition keys are not
evaluated. The credentials' expiration
is then set from the simulated clock, so a client's refresh logic can be tested without waiting.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

from agent.sim import wording
from agent.sim.middleware import Reply

DEFAULT_DURATION_SECONDS = 3600
_EXPIRATION = re.compile(rb"<Expiration>[^<]*</Expiration>")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>\d{12}):role/(?:.*/)?(?P<name>[^/]+)$")


def role_account_and_name(role_arn: str) -> tuple[str, str] | None:
    match = _ROLE_ARN.match(role_arn)
    return (match.group("account"), match.group("name")) if match else None


def parse_policy(document: str) -> Mapping[str, Any] | None:
    """A policy document as IAM stores it: JSON, or URL-encoded JSON."""
    for text in (document, unquote(document)):
        try:
            parsed = json.loads(text)
        except ValueError:
            continue
        return parsed if isinstance(parsed, dict) else None
    return None


def _listed(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def principal_arn(caller_arn: str) -> str:
    """`aws:PrincipalArn` of a caller: an assumed-role session is its role's ARN."""
    return re.sub(r":sts::(\d{12}):assumed-role/([^/]+)/.*$", r":iam::\1:role/\2", caller_arn)


def _principal_matches(principal: object, caller_account: str, caller_arn: str) -> bool:
    if principal == "*":
        return True
    allowed = _listed(principal.get("AWS")) if isinstance(principal, dict) else []
    accepted = {"*", caller_account, f"arn:aws:iam::{caller_account}:root", caller_arn, principal_arn(caller_arn)}
    return any(p in accepted for p in allowed)


_EXACT = ("StringEquals", "ArnEquals")
_PATTERN = ("StringLike", "ArnLike")


def _holds(operator: str, actual: str | None, values: list[str]) -> bool:
    if actual is None:
        return False
    if operator in _EXACT:
        return actual in values
    if operator in _PATTERN:
        return any(fnmatchcase(actual, value) for value in values)
    return False


def _conditions_hold(condition: object, external_id: str | None, caller_arn: str) -> bool:
    facts = {"sts:externalid": external_id, "aws:principalarn": principal_arn(caller_arn)}
    for operator, clauses in (condition or {}).items() if isinstance(condition, dict) else ():
        for key, values in clauses.items() if isinstance(clauses, dict) else ():
            if key.lower() not in facts:
                continue  # not simulated
            if not _holds(operator, facts[key.lower()], _listed(values)):
                return False
    return True


def trusts(policy: Mapping[str, Any], *, caller_account: str, caller_arn: str, external_id: str | None) -> bool:
    """Whether a trust policy lets the caller assume the role (an Allow for sts:AssumeRole whose principal
    and external-id condition match; an explicit Deny for it wins)."""
    statements = policy.get("Statement")
    listed: Iterable[Any] = statements if isinstance(statements, list) else [statements]
    allowed = False
    for statement in listed:
        if not isinstance(statement, dict):
            continue
        actions = _listed(statement.get("Action"))
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            continue
        matches = _principal_matches(statement.get("Principal"), caller_account, caller_arn) and _conditions_hold(
            statement.get("Condition"), external_id, caller_arn
        )
        if matches and statement.get("Effect") == "Deny":
            return False
        allowed = allowed or (matches and statement.get("Effect") == "Allow")
    return allowed


def access_denied(caller_arn: str, role_arn: str) -> Reply:
    """STS's answer to a refused AssumeRole (query protocol, HTTP 403)."""
    request_id = str(uuid.uuid4())
    xml = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        f"<Code>AccessDenied</Code><Message>{escape(wording.assume_role_denied(caller_arn, role_arn))}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return Reply(403, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], xml.encode())


def with_expiration(body: bytes, now: datetime, duration_seconds: int) -> bytes:
    """AssumeRole's answer with the credentials expiring `duration_seconds` after `now`."""
    expires = (now + timedelta(seconds=duration_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _EXPIRATION.sub(f"<Expiration>{expires}</Expiration>".encode(), body, count=1)
