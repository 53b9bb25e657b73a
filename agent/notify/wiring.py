"""The notifier the settings describe: its channels, and the one write dry-run allows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.notify.channels import SecretUrl, SnsChannel, StaticUrl, WebhookChannel, allows_publish
from agent.notify.dispatch import Notifier
from agent.notify.render import WebhookFormat

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from agent.metrics import Metrics
    from agent.notify.channels import AwsCaller, Channel
    from agent.notify.dispatch import Ledger
    from agent.settings import Settings


def channels_from_settings(settings: Settings, gateway: AwsCaller) -> list[Channel]:
    """The configured channels: the SNS topic and the webhook, each when set."""
    channels: list[Channel] = []
    if settings.notify_sns_topic_arn:
        channels.append(SnsChannel(gateway, settings.notify_sns_topic_arn))
    fmt = WebhookFormat(settings.notify_webhook_format)
    if settings.notify_webhook_url is not None:
        channels.append(WebhookChannel(StaticUrl(settings.notify_webhook_url.get_secret_value()), fmt=fmt))
    elif settings.notify_webhook_secret_arn:
        channels.append(WebhookChannel(SecretUrl(gateway, settings.notify_webhook_secret_arn), fmt=fmt))
    return channels


def notifier_from_settings(
    settings: Settings,
    gateway: AwsCaller,
    metrics: Metrics,
    log: Any,  # noqa: ANN401 - a structlog logger
    *,
    ledger: Ledger | None = None,
    extra_channels: Sequence[Channel] = (),
) -> Notifier:
    """A started notifier for the configured channels (plus `extra_channels`, e.g. the console).
    With no channel configured it accepts every notification and sends none."""
    channels = [*channels_from_settings(settings, gateway), *extra_channels]
    log.info("notifications_configured", channels=[channel.name for channel in channels])
    return Notifier(channels, metrics=metrics, log=log, ledger=ledger, rate_per_minute=settings.notify_rate_per_minute)


def dry_run_allows(settings: Settings) -> Callable[[str, str, Mapping[str, Any]], bool]:
    """For the gateway: in dry-run, publishing to the configured topic is the one write let through."""
    return allows_publish(settings.notify_sns_topic_arn)
