"""IAM's policy simulator for the world's roles: `iam:SimulatePrincipalPolicy`, which moto does not serve.

Every (action, resource) pair is decided from the policies IAM stores for the role, inline and attached,
with the AWS-managed ones an execution role uses (`agent.sim.iam_policy`), exactly as the world's own
runtime decides whether a pull is denied: an explicit Deny wins, then any Allow, else an implicit deny.
The answer is IAM's XML, so botocore parses it like the real one. Roles only: a user or group ARN is
answered as IAM answers an entity it cannot find.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from agent.sim import moto_bridge as bridge
from agent.sim.faults import Protocol, validation_error
from agent.sim.iam_policy import KNOWN_MANAGED_POLICIES, decide, parse_document
from agent.sim.middleware import Reply

if TYPE_CHECKING:
    from collections.abc import Mapping

    from agent.sim.middleware import ApiCall, CallHooks, InvokeJson

_NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"


def _members(params: Mapping[str, Any], name: str) -> list[str]:
    """`ActionNames.member.1`, `ActionNames.member.2`, ... of a query-protocol request, in order."""
    found = []
    index = 1
    while f"{name}.member.{index}" in params:
        found.append(str(params[f"{name}.member.{index}"]))
        index += 1
    return found


def _error(code: str, message: str) -> Reply:
    error = validation_error(Protocol.QUERY, code, message)
    status = 404 if code == "NoSuchEntity" else error.status
    return Reply(status, list(error.headers), error.body)


def _documents(role: str) -> tuple[list[str], list[dict[str, Any]]] | None:
    named = bridge.role_policies(role)
    if named is None:
        return None
    names, documents = [], []
    for name, document in named:
        if isinstance(document, dict) and "Arn" in document:
            parsed = dict(KNOWN_MANAGED_POLICIES.get(str(document["Arn"]), {}))
        else:
            parsed = parse_document(document)
        names.append(name)
        documents.append(parsed)
    return names, documents


def _result(action: str, resource: str, decision: str, matched: list[str]) -> str:
    statements = "".join(
        f"<member><SourcePolicyId>{escape(name)}</SourcePolicyId><SourcePolicyType>IAM Policy</SourcePolicyType>"
        "</member>"
        for name in matched
    )
    return (
        f"<member><EvalActionName>{escape(action)}</EvalActionName><EvalResourceName>{escape(resource)}"
        f"</EvalResourceName><EvalDecision>{decision}</EvalDecision><MatchedStatements>{statements}"
        "</MatchedStatements><MissingContextValues/></member>"
    )


def simulate_principal_policy(params: Mapping[str, Any]) -> Reply:
    """The answer to one SimulatePrincipalPolicy request (query protocol parameters)."""
    source = str(params.get("PolicySourceArn") or "")
    actions = _members(params, "ActionNames")
    resources = _members(params, "ResourceArns") or ["*"]
    if not source or not actions:
        return _error("InvalidInput", "PolicySourceArn and ActionNames are required.")
    kind, _, name = source.split(":", 5)[-1].partition("/")
    role = name.rsplit("/", 1)[-1]
    loaded = _documents(role) if kind == "role" else None
    if loaded is None:
        return _error("NoSuchEntity", f"The entity {source} cannot be found.")
    names, documents = loaded
    results = []
    for action in actions:
        for resource in resources:
            decision, indexes = decide(documents, action, resource)
            results.append(_result(action, resource, decision, [names[i] for i in indexes]))
    body = (
        f'<SimulatePrincipalPolicyResponse xmlns="{_NAMESPACE}"><SimulatePrincipalPolicyResult>'
        f"<IsTruncated>false</IsTruncated><EvaluationResults>{''.join(results)}</EvaluationResults>"
        f"</SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
        "</ResponseMetadata></SimulatePrincipalPolicyResponse>"
    )
    return Reply(200, [("Content-Type", "text/xml")], body.encode())


class WorldApis:
    """The middleware's hooks: the operations the world serves itself, in front of the runtime's."""

    def __init__(self, inner: CallHooks) -> None:
        self._inner = inner

    def before(self, call: ApiCall, invoke: InvokeJson) -> Reply | None:
        if call.service == "iam" and call.operation == "SimulatePrincipalPolicy":
            return simulate_principal_policy(call.params)
        return self._inner.before(call, invoke)

    def after(self, call: ApiCall, reply: Reply, invoke: InvokeJson) -> bytes | None:
        return self._inner.after(call, reply, invoke)
