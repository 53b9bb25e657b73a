"""Where notifications go: an SNS topic, a chat webhook, or the console.

A channel sends one rendered notification and raises `TemporaryDeliveryError` (worth retrying:
timeouts, throttling, 5xx) or `PermanentDeliveryError` (the request itself is wrong: retrying only
repeats it). Channels never log a webhook URL: it is a credential, and errors name only the status
or the kind of failure.

SNS is reached through the agent's AWS gateway (budgets, retries, the dry-run guard), never through
a client of its own; `allows_publish` is the one write the gateway lets through in dry-run.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import httpx

from agent.notify.render import WebhookFormat, console_text, render_sns, webhook_payload

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import TextIO

    from agent.notify.events import Notification


class DeliveryError(Exception):
    """A delivery attempt failed. The message is safe to log (it never holds a URL or a secret)."""


class TemporaryDeliveryError(DeliveryError):
    """Worth another attempt after a pause: timeouts, throttling, server errors."""


class PermanentDeliveryError(DeliveryError):
    """Another attempt would fail the same way: a refused request, a missing topic, a bad secret."""


class Channel(Protocol):
    """A destination for notifications, named as policies name it (`spec.notify`)."""

    @property
    def name(self) -> str: ...

    def send(self, notification: Notification) -> None:
        """Deliver one notification, or raise a DeliveryError."""
        ...

    def close(self) -> None:
        """Release connections; called once, after the last send."""
        ...


class AwsCaller(Protocol):
    """The one call the AWS channels need; `agent.aws.AwsGateway` is one."""

    def call(
        self, api: str, operation: str, params: Mapping[str, Any], *, idempotent: bool = False
    ) -> dict[str, Any]: ...


def allows_publish(topic_arn: str | None) -> Callable[[str, str, Mapping[str, Any]], bool]:
    """For `AwsGateway(dry_run=True, dry_run_allows=...)`: let through exactly one kind of write,
    `sns:Publish` to `topic_arn` (not to a phone number or another target), and nothing else."""

    def allows(api: str, operation: str, params: Mapping[str, Any]) -> bool:
        return (
            topic_arn is not None
            and (api, operation) == ("sns", "Publish")
            and params.get("TopicArn") == topic_arn
            and not params.get("TargetArn")
            and not params.get("PhoneNumber")
        )

    return allows


def _aws_error(error: Exception, what: str) -> DeliveryError:
    """A gateway error as a delivery error. The gateway has already retried throttling and 5xx;
    a 4xx that is not throttling is a fact about the request."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code") or "")
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"{what}: {code or status}: {response.get('Error', {}).get('Message', '')}".rstrip(": ")
        if 400 <= status < 500 and status != 429 and "hrottl" not in code:
            return PermanentDeliveryError(message)
        return TemporaryDeliveryError(message)
    return TemporaryDeliveryError(f"{what}: {type(error).__name__}: {error}")


class SnsChannel:
    """Publishes to one SNS topic: subject, email-readable body, and filterable message attributes."""

    name: ClassVar[str] = "sns"

    def __init__(self, aws: AwsCaller, topic_arn: str) -> None:
        self._aws = aws
        self.topic_arn = topic_arn

    def send(self, notification: Notification) -> None:
        message = render_sns(notification)
        params = {
            "TopicArn": self.topic_arn,
            "Subject": message.subject,
            "Message": message.body,
            "MessageAttributes": message.attributes,
        }
        try:
            # A publish whose answer was lost may be sent again: a notification is delivered at least once.
            self._aws.call("sns", "Publish", params, idempotent=True)
        except Exception as error:  # the gateway raises botocore's errors, which this layer does not import
            raise _aws_error(error, "sns:Publish") from error

    def close(self) -> None:
        """Nothing to release: the gateway owns the client."""


# --- webhook URLs: a setting, or a Secrets Manager secret ----------------------------------------------------


def checked_url(url: str) -> str:
    """`url` if it is an absolute http(s) URL; the error never repeats it."""
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL:
        raise ValueError("the webhook URL is not a valid URL") from None
    if parsed.scheme not in ("https", "http") or not parsed.host:
        raise ValueError("the webhook URL must be an absolute https:// URL")
    return str(parsed)


class StaticUrl:
    """A webhook URL given in the settings."""

    def __init__(self, url: str) -> None:
        self._url = checked_url(url)

    def get(self) -> str:
        return self._url

    def forget(self) -> None:
        """A configured URL cannot be read again."""


class SecretUrl:
    """A webhook URL kept in Secrets Manager, read through the gateway when first needed and read
    again after the receiver refused it (the secret may have been rotated). The secret's value is the
    URL itself, or a JSON object with a `url` key."""

    def __init__(self, aws: AwsCaller, secret_arn: str) -> None:
        self._aws = aws
        self.secret_arn = secret_arn
        self._url: str | None = None

    def get(self) -> str:
        if self._url is None:
            try:
                secret = self._aws.call("secretsmanager", "GetSecretValue", {"SecretId": self.secret_arn})
            except Exception as error:  # the gateway's botocore errors; see _aws_error
                raise _aws_error(error, "secretsmanager:GetSecretValue") from error
            self._url = self._parse(str(secret.get("SecretString") or ""))
        return self._url

    def forget(self) -> None:
        self._url = None

    @staticmethod
    def _parse(value: str) -> str:
        text = value.strip()
        if text.startswith("{"):
            try:
                text = str(json.loads(text).get("url") or "")
            except (ValueError, AttributeError):
                text = ""
        try:
            return checked_url(text)
        except ValueError:
            raise PermanentDeliveryError(
                "the webhook secret holds no https:// URL (nor a JSON object with a `url` key)"
            ) from None


class UrlSource(Protocol):
    def get(self) -> str: ...

    def forget(self) -> None: ...


# Statuses worth another attempt: request timeout, too many requests, and server errors.
_RETRYABLE_STATUS = frozenset({408, 425, 429})
_REFUSED_URL_STATUS = frozenset({401, 403, 404, 410})


class WebhookChannel:
    """Posts JSON to an incoming-webhook URL, with connect and read timeouts, never following
    redirects (a webhook that redirects is misconfigured, and the redirect would carry the payload)."""

    name: ClassVar[str] = "webhook"

    def __init__(
        self,
        url: UrlSource,
        *,
        fmt: WebhookFormat = WebhookFormat.SLACK,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
    ) -> None:
        self._url = url
        self.fmt = fmt
        self._client = httpx.Client(
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            follow_redirects=False,
            headers={"User-Agent": "ecs-medic"},
        )

    def send(self, notification: Notification) -> None:
        url = self._url.get()
        try:
            response = self._client.post(url, json=webhook_payload(notification, self.fmt))
        except httpx.TimeoutException as error:
            # `from None`: httpx's exceptions may quote the request, and the URL is a credential.
            raise TemporaryDeliveryError(f"webhook timed out ({type(error).__name__})") from None
        except httpx.HTTPError as error:
            raise TemporaryDeliveryError(f"webhook unreachable ({type(error).__name__})") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in _RETRYABLE_STATUS or status >= 500:
            raise TemporaryDeliveryError(f"webhook answered HTTP {status}")
        if status in _REFUSED_URL_STATUS:
            self._url.forget()  # a rotated secret is read again for the next notification
        raise PermanentDeliveryError(f"webhook answered HTTP {status}")

    def close(self) -> None:
        self._client.close()


# --- local channels: the demo and tests -----------------------------------------------------------------------


class ConsoleChannel:
    """Prints each notification (its SNS subject and body) to a stream: the demo's channel."""

    def __init__(self, stream: TextIO | None = None, name: str = "console") -> None:
        self._stream = stream
        self._name = name
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def send(self, notification: Notification) -> None:
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(console_text(notification) + "\n")
            stream.flush()

    def close(self) -> None:
        """The stream is the caller's."""


class RecordingChannel:
    """Keeps every notification it is given, in order (tests, and callers that show them later)."""

    def __init__(self, name: str = "recording") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._sent: list[Notification] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def sent(self) -> list[Notification]:
        with self._lock:
            return list(self._sent)

    def send(self, notification: Notification) -> None:
        with self._lock:
            self._sent.append(notification)

    def close(self) -> None:
        """Nothing to release."""
