"""Notifications: tell people, where they already look, when something changes (SNS, chat webhooks).

    notifier = notifier_from_settings(settings, gateway, metrics, log, ledger=...)
    notifier.submit(Notification(kind=Kind.APPLIED, key=f"{proposal_id}:applied", cluster=..., ...))
    notifier.close(timeout=10)

`submit` never blocks and never raises; each change of state (its `key`) is sent once.

Names load on first use, so that the policy language, which needs only the channel names in
`agent.notify.events`, does not load the HTTP client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.notify.channels import (
        AwsCaller,
        Channel,
        ConsoleChannel,
        DeliveryError,
        PermanentDeliveryError,
        RecordingChannel,
        SecretUrl,
        SnsChannel,
        StaticUrl,
        TemporaryDeliveryError,
        WebhookChannel,
        allows_publish,
    )
    from agent.notify.dispatch import Ledger, MemoryLedger, Notifier
    from agent.notify.events import POLICY_CHANNELS, Change, Kind, Notification, Verdict
    from agent.notify.render import WebhookFormat
    from agent.notify.wiring import channels_from_settings, dry_run_allows, notifier_from_settings

_HOMES = {
    "agent.notify.channels": (
        "AwsCaller",
        "Channel",
        "ConsoleChannel",
        "DeliveryError",
        "PermanentDeliveryError",
        "RecordingChannel",
        "SecretUrl",
        "SnsChannel",
        "StaticUrl",
        "TemporaryDeliveryError",
        "WebhookChannel",
        "allows_publish",
    ),
    "agent.notify.dispatch": ("Ledger", "MemoryLedger", "Notifier"),
    "agent.notify.events": ("POLICY_CHANNELS", "Change", "Kind", "Notification", "Verdict"),
    "agent.notify.render": ("WebhookFormat",),
    "agent.notify.wiring": ("channels_from_settings", "dry_run_allows", "notifier_from_settings"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = [
    "POLICY_CHANNELS",
    "AwsCaller",
    "Change",
    "Channel",
    "ConsoleChannel",
    "DeliveryError",
    "Kind",
    "Ledger",
    "MemoryLedger",
    "Notification",
    "Notifier",
    "PermanentDeliveryError",
    "RecordingChannel",
    "SecretUrl",
    "SnsChannel",
    "StaticUrl",
    "TemporaryDeliveryError",
    "Verdict",
    "WebhookChannel",
    "WebhookFormat",
    "allows_publish",
    "channels_from_settings",
    "dry_run_allows",
    "notifier_from_settings",
]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whichever public name is asked for
    if name not in _HOME_OF:
        raise AttributeError(f"module 'agent.notify' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME_OF[name]), name)
