"""Notifications: tell people, where they already look, when something changes (SNS, chat webhooks).

    notifier = notifier_from_settings(settings, gateway, metrics, log, ledger=...)
    notifier.submit(Notification(kind=Kind.APPLIED, key=f"{proposal_id}:applied", cluster=..., ...))
    notifier.close(timeout=10)

`submit` never blocks and never raises; each change of state (its `key`) is sent once.
"""

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
