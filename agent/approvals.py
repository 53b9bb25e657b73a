"""Approvals that prove who gave them: signed with an AWS KMS key only approvers may use.

`ecs-medic approve ID` signs "this proposal, on this service, approved by this identity, from then
until then" with an asymmetric KMS key (`kms:Sign`, granted to approvers only) and writes the result
in two tags of the service. The agent checks the signature with `kms:Verify` (it cannot sign), so a
tag written by anyone else, an edited expiry, a copied approval or one for another service is worth
nothing. CloudTrail records every `Sign` call and who made it. An approval also

- lasts at most `max_ttl` (however long the signer asked for),
- cannot come from the agent's own identity (it may not approve its own proposals),
- is used once: a change applied under it consumes it.

Parsing and the rules are pure; signing and verifying go through the `AwsApi` protocol.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from agent.state import CLOCK_SKEW, PREFIX

if TYPE_CHECKING:
    from collections.abc import Mapping

    from agent.actions.base import AwsApi

APPROVAL_TAG = PREFIX + "approval"  # "<proposal id> <issued epoch> <expires epoch> <signature, base64>"
APPROVER_TAG = PREFIX + "approved-by"  # the approver's ARN, as STS names it
SIGNING_ALGORITHM = "ECDSA_SHA_256"
KEY_SPEC = "ECC_NIST_P256"


@dataclass(frozen=True, slots=True)
class Approval:
    """A verified approval: which proposal, until when, by whom."""

    proposal_id: str
    issued: datetime
    expires: datetime
    approver: str


@dataclass(frozen=True, slots=True)
class Signed:
    approval: Approval
    signature: bytes


def message(service_arn: str, approval: Approval) -> bytes:
    """What is signed: every fact the approval asserts, so none can be changed or moved."""
    return "\n".join(
        (
            "ecs-medic approval v1",
            service_arn,
            approval.proposal_id,
            str(int(approval.issued.timestamp())),
            str(int(approval.expires.timestamp())),
            approval.approver,
        )
    ).encode()


def encode(signed: Signed) -> dict[str, str]:
    approval = signed.approval
    value = " ".join(
        (
            approval.proposal_id,
            str(int(approval.issued.timestamp())),
            str(int(approval.expires.timestamp())),
            base64.b64encode(signed.signature).decode(),
        )
    )
    return {APPROVAL_TAG: value, APPROVER_TAG: approval.approver}


def decode(tags: Mapping[str, str]) -> tuple[Signed | None, str]:
    """The signed approval in a service's tags, or None and why (empty: there is none)."""
    value = tags.get(APPROVAL_TAG)
    if value is None:
        return None, ""
    try:
        proposal_id, issued, expires, signature = value.split(" ")
        approval = Approval(
            proposal_id,
            datetime.fromtimestamp(int(issued), tz=UTC),
            datetime.fromtimestamp(int(expires), tz=UTC),
            tags.get(APPROVER_TAG, ""),
        )
        return Signed(approval, base64.b64decode(signature, validate=True)), ""
    except (ValueError, OverflowError, OSError, binascii.Error):
        return None, f"{APPROVAL_TAG} is not a signed approval (written by hand, or by an older version)"


def principal(arn: str) -> str:
    """Who an ARN stands for: an assumed-role session stands for its role (`123456789012:role/name`)."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return arn
    account, resource = parts[4], parts[5]
    if resource.startswith("assumed-role/"):
        return f"{account}:role/{resource.split('/')[1]}"
    return f"{account}:{resource}"


def refusal(approval: Approval, *, now: datetime, max_ttl: timedelta, agent: str | None) -> str:
    """Why an approval must not be believed ("" when its facts are acceptable; the signature is
    checked separately)."""
    if not approval.approver:
        return f"no {APPROVER_TAG} tag: the approval names nobody"
    if agent and principal(approval.approver) == principal(agent):
        return "approved by the agent's own identity: the agent may not approve its own proposals"
    if approval.issued > now + CLOCK_SKEW:
        return f"issued in the future ({approval.issued.isoformat()})"
    if approval.expires <= now:
        return f"expired at {approval.expires.isoformat()}"
    if approval.expires - approval.issued > max_ttl + CLOCK_SKEW:
        return f"valid for longer than the allowed {int(max_ttl.total_seconds())} s"
    return ""


def sign(aws: AwsApi, key_id: str, service_arn: str, approval: Approval) -> Signed:
    response = aws.call(
        "kms",
        "Sign",
        {
            "KeyId": key_id,
            "Message": message(service_arn, approval),
            "MessageType": "RAW",
            "SigningAlgorithm": SIGNING_ALGORITHM,
        },
    )
    return Signed(approval, bytes(response["Signature"]))


def verify(aws: AwsApi, key_id: str, service_arn: str, signed: Signed) -> bool:
    """True only when KMS confirms the signature over exactly these facts."""
    try:
        response = aws.call(
            "kms",
            "Verify",
            {
                "KeyId": key_id,
                "Message": message(service_arn, signed.approval),
                "MessageType": "RAW",
                "Signature": signed.signature,
                "SigningAlgorithm": SIGNING_ALGORITHM,
            },
        )
    except Exception as error:
        if getattr(error, "response", {}).get("Error", {}).get("Code") == "KMSInvalidSignatureException":
            return False
        raise
    return bool(response.get("SignatureValid"))


def grant(
    aws: AwsApi,
    *,
    key_id: str,
    service_arn: str,
    tags: Mapping[str, str],
    proposal_id: str,
    now: datetime,
    ttl: timedelta,
) -> tuple[Approval, bool]:
    """Approve `proposal_id` as the caller's own AWS identity: (the approval, whether it already was).

    What `ecs-medic approve` does: who approves comes from STS, the approval is signed with KMS and
    written in the service's tags. A valid approval of the same proposal is kept as it is.
    """
    current, _ = decode(tags)
    if (
        current is not None
        and current.approval.proposal_id == proposal_id
        and current.approval.expires > now
        and verify(aws, key_id, service_arn, current)
    ):
        return current.approval, True
    identity = str(aws.call("sts", "GetCallerIdentity", {})["Arn"])
    approval = Approval(proposal_id, now.replace(microsecond=0), (now + ttl).replace(microsecond=0), identity)
    signed = sign(aws, key_id, service_arn, approval)
    tagged = [{"key": key, "value": value} for key, value in encode(signed).items()]
    aws.call("ecs", "TagResource", {"resourceArn": service_arn, "tags": tagged}, idempotent=True)
    return approval, False
