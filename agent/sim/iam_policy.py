"""Just enough IAM policy evaluation to decide whether an execution role may pull from ECR.

An explicit Deny wins over any Allow; actions and resources match with IAM's `*` and `?` wildcards,
actions case-insensitively. Conditions, NotAction and NotResource are not modelled: a statement that
uses them grants nothing.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

ECR_PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
ECR_TOKEN_ACTION = "ecr:GetAuthorizationToken"  # noqa: S105 - an IAM action name, not a secret

# AWS-managed policies are not loaded into the emulator; the ones an execution role uses are known.
KNOWN_MANAGED_POLICIES: Mapping[str, dict[str, Any]] = {
    "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "ecr:GetAuthorizationToken",
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                ],
                "Resource": "*",
            }
        ],
    },
}


def parse_document(document: str | Mapping[str, Any]) -> dict[str, Any]:
    """A policy document as IAM stores it (JSON text, sometimes URL-quoted) or already parsed."""
    if isinstance(document, Mapping):
        return dict(document)
    text = document if document.lstrip().startswith("{") else unquote(document)
    parsed = json.loads(text)
    return parsed if isinstance(parsed, dict) else {}


def _as_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = document.get("Statement")
    if isinstance(statements, Mapping):
        return [statements]
    return [s for s in statements if isinstance(s, Mapping)] if isinstance(statements, list) else []


def _matches(statement: Mapping[str, Any], action: str, resource: str) -> bool:
    if "Condition" in statement or "NotAction" in statement or "NotResource" in statement:
        return False
    actions = _as_list(statement.get("Action"))
    resources = _as_list(statement.get("Resource"))
    return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions) and any(
        fnmatch.fnmatchcase(resource, r) for r in resources
    )


ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY = "allowed", "explicitDeny", "implicitDeny"


def decide(documents: Iterable[Mapping[str, Any]], action: str, resource: str) -> tuple[str, list[int]]:
    """IAM's decision for `action` on `resource` (`allowed`, `explicitDeny` or `implicitDeny`) and the
    indexes of the documents whose statements decided it."""
    allowing: list[int] = []
    for index, document in enumerate(documents):
        for statement in _statements(document):
            if not _matches(statement, action, resource):
                continue
            if statement.get("Effect") == "Deny":
                return EXPLICIT_DENY, [index]
            if statement.get("Effect") == "Allow" and index not in allowing:
                allowing.append(index)
    return (ALLOWED, allowing) if allowing else (IMPLICIT_DENY, [])


def is_allowed(documents: Iterable[Mapping[str, Any]], action: str, resource: str) -> bool:
    """Whether the identity holding `documents` may perform `action` on `resource`."""
    return decide(documents, action, resource)[0] == ALLOWED


def missing_pull_permission(documents: Iterable[Mapping[str, Any]], repository_arn: str) -> str | None:
    """The first ECR permission the role lacks to pull from `repository_arn`, or None."""
    docs = list(documents)
    if not is_allowed(docs, ECR_TOKEN_ACTION, "*"):
        return ECR_TOKEN_ACTION
    for action in ECR_PULL_ACTIONS:
        if not is_allowed(docs, action, repository_arn):
            return action
    return None
