"""The notifier: hands notifications to their channels without ever holding up a pass.

`submit` only puts the notification on each routed channel's bounded queue and returns; it never
blocks and never raises. One worker thread per channel delivers, in order, at most `rate_per_minute`
per minute, retrying temporary failures with jittered exponential backoff (tenacity) up to
`max_attempts`, so a hanging or failing webhook delays neither a pass nor the SNS topic.

Once per change of state: a notification's `key` (proposal id and state) is sent once. A key on
its way is not queued again, and a key the ledger has seen is not sent again; the ledger is marked
when every channel has delivered it or given up on it. A notification dropped (full queue, shutdown)
is not marked, so the next pass that submits it sends it then. Delivery is at least once: a restart
between sending and marking sends it again.

Every outcome is counted in `ecs_medic_notifications_total{channel,event,outcome}`: `sent`,
`retried` (an attempt failed and another follows), `failed` (given up), `dropped` (not attempted).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from agent.notify.channels import DeliveryError, TemporaryDeliveryError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from agent.metrics import Metrics
    from agent.notify.channels import Channel
    from agent.notify.events import Notification


class Ledger(Protocol):
    """Which changes of state were already notified. Back it with the agent's persistent state so
    that a restart does not send them again."""

    def seen(self, key: str) -> bool: ...

    def mark(self, key: str) -> None: ...


class MemoryLedger:
    """A ledger in memory, holding the `capacity` most recently marked keys."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, key: str) -> bool:
        with self._lock:
            return key in self._keys

    def mark(self, key: str) -> None:
        with self._lock:
            self._keys[key] = None
            self._keys.move_to_end(key)
            while len(self._keys) > self._capacity:
                self._keys.popitem(last=False)

    def known(self, keys: Iterable[str]) -> set[str]:
        """Which of `keys` were marked (the caller records them where they outlive the process)."""
        with self._lock:
            return {key for key in keys if key in self._keys}


class RateLimit:
    """A token bucket: `per_minute` sustained, `burst` at once. `reserve` takes a token and says how
    long to wait before using it, so the caller can wait in a way that shutdown interrupts."""

    def __init__(self, per_minute: float, burst: float, clock: Callable[[], float]) -> None:
        self._rate = per_minute / 60.0
        self._burst = burst
        self._tokens = burst
        self._clock = clock
        self._updated = clock()

    def reserve(self) -> float:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        self._tokens -= 1
        return -self._tokens / self._rate if self._tokens < 0 else 0.0


class _AbandonedError(Exception):
    """The notifier is shutting down: stop waiting, leave the notification unsent."""


_CLOSE: Any = object()  # a worker's last queue item


@dataclass
class _Lane:
    """One channel, its queue and its worker."""

    channel: Channel
    name: str
    queue: queue.Queue[Notification]
    limit: RateLimit
    thread: threading.Thread | None = None


@dataclass
class _Pending:
    """A key on its way: the channels still to finish with it, and whether each one settled it
    (delivered or gave up) rather than dropping it."""

    channels: set[str]
    settled: bool = True


class Notifier:
    """Delivers notifications to channels in the background. `submit` never blocks nor raises."""

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        metrics: Metrics,
        log: Any,  # noqa: ANN401 - a structlog logger
        ledger: Ledger | None = None,
        queue_size: int = 200,
        rate_per_minute: float = 20.0,
        burst: float | None = None,
        max_attempts: int = 8,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        names = [channel.name for channel in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"two channels share a name: {sorted(names)}")
        self.metrics = metrics
        self.ledger: Ledger = ledger if ledger is not None else MemoryLedger()
        self._log = log
        self._queue_size = queue_size
        self._max_attempts = max_attempts
        self._backoff = (backoff_seconds, max_backoff_seconds)
        self._stop = threading.Event()
        self._sleep: Callable[[float], object] = sleep or self._stop.wait
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)  # notified whenever a key leaves `_pending`
        self._pending: dict[str, _Pending] = {}
        self._closed = False
        self._unconfigured_logged: set[str] = set()
        self._lanes = [
            # One more slot than the bound: room for the worker's closing item however full it is.
            _Lane(
                channel,
                channel.name,
                queue.Queue(queue_size + 1),
                RateLimit(rate_per_minute, max(1.0, burst or rate_per_minute), clock),
            )
            for channel in channels
        ]
        for lane in self._lanes:
            lane.thread = threading.Thread(target=self._work, args=(lane,), name=f"notify-{lane.name}", daemon=True)
            lane.thread.start()

    @property
    def channels(self) -> list[str]:
        return [lane.name for lane in self._lanes]

    # --- the caller's side -------------------------------------------------------------------------------

    def submit(self, notification: Notification) -> None:
        """Queue `notification` for its channels and return at once. Never raises."""
        try:
            self._submit(notification)
        except Exception:  # noqa: BLE001 - the one promise of submit: a notification never fails a pass
            self._log.exception("notification_submit_failed", key=getattr(notification, "key", None))

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds until every submitted key is settled or dropped; True if so.
        For a demo that prints what was sent after each pass, and for tests; a pass never calls it."""
        with self._settled:
            return self._settled.wait_for(lambda: not self._pending, timeout)

    def pending(self) -> int:
        """Keys on their way (queued, being sent or retried)."""
        with self._lock:
            return len(self._pending)

    def queued(self, channel: str) -> int:
        """Notifications waiting in one channel's queue (not counting the one being sent)."""
        return next(lane.queue.qsize() for lane in self._lanes if lane.name == channel)

    def _submit(self, notification: Notification) -> None:
        self._log_unconfigured(notification)
        lanes = [lane for lane in self._lanes if lane.name in notification.routed_to(self.channels)]
        if not lanes:
            return
        with self._lock:
            if self._closed:
                for lane in lanes:
                    self._dropped(lane.name, notification, "closed")
                return
            if notification.key in self._pending or self._known(notification.key):
                return  # on its way already, or settled: a later pass repeating the same change
            self._pending[notification.key] = _Pending({lane.name for lane in lanes})
            full = [lane for lane in lanes if lane.queue.qsize() >= self._queue_size]
            for lane in lanes:
                if lane not in full:
                    lane.queue.put_nowait(notification)
        for lane in full:
            self._dropped(lane.name, notification, "queue_full")
            self._finish(notification.key, lane.name, settled=False)

    def _known(self, key: str) -> bool:
        """Whether the ledger knows the key; a ledger that cannot answer says no (the worker asks again)."""
        try:
            return self.ledger.seen(key)
        except Exception:  # noqa: BLE001 - a ledger that cannot answer must not stop delivery
            return False

    def _log_unconfigured(self, notification: Notification) -> None:
        for name in notification.channels:
            if name not in self.channels and name not in self._unconfigured_logged:
                self._unconfigured_logged.add(name)
                self._log.warning(
                    "notification_channel_not_configured",
                    channel=name,
                    policy=notification.policy,
                    configured=self.channels,
                )

    # --- the workers -------------------------------------------------------------------------------------

    def _work(self, lane: _Lane) -> None:
        while True:
            notification = lane.queue.get()
            if notification is _CLOSE:
                return
            settled = False
            try:
                settled = self._deliver(lane, notification)
            except Exception:  # noqa: BLE001 - a worker that died would silently stop its channel
                with contextlib.suppress(Exception):  # not even a log that cannot be written may stop it
                    self._log.exception("notification_worker_failed", channel=lane.name, key=notification.key)
            finally:
                self._finish(notification.key, lane.name, settled=settled)

    def _deliver(self, lane: _Lane, notification: Notification) -> bool:
        """Send one notification on one lane; True when it is settled (sent, known, or given up)."""
        event = notification.kind.value
        if self._stop.is_set():
            self._dropped(lane.name, notification, "shutdown")
            return False
        try:
            if self.ledger.seen(notification.key):
                return True
        except Exception:  # noqa: BLE001 - a ledger that cannot answer must not stop delivery
            self._log.exception("notification_ledger_failed", key=notification.key)
        attempts = Retrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=wait_exponential_jitter(initial=self._backoff[0], max=self._backoff[1], jitter=self._backoff[0]),
            retry=retry_if_exception_type(TemporaryDeliveryError),
            sleep=self._pause,
            before_sleep=lambda state: self._retrying(lane, notification, state),
            reraise=True,
        )
        try:
            self._pause(lane.limit.reserve())
            attempts(lane.channel.send, notification)
        except _AbandonedError:
            self._dropped(lane.name, notification, "shutdown")
            return False
        except Exception as error:  # noqa: BLE001 - a channel's failure is counted and logged, never raised
            self.metrics.notifications.labels(lane.name, event, "failed").inc()
            self._log.error(
                "notification_failed",
                channel=lane.name,
                kind=event,
                key=notification.key,
                cluster=notification.cluster,
                service=notification.service,
                error=str(error) if isinstance(error, DeliveryError) else type(error).__name__,
                retryable=isinstance(error, TemporaryDeliveryError),
            )
            return True
        self.metrics.notifications.labels(lane.name, event, "sent").inc()
        self._log.info(
            "notification_sent",
            channel=lane.name,
            kind=event,
            key=notification.key,
            cluster=notification.cluster,
            service=notification.service,
        )
        return True

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)
        if self._stop.is_set():
            raise _AbandonedError

    def _retrying(self, lane: _Lane, notification: Notification, state: RetryCallState) -> None:
        self.metrics.notifications.labels(lane.name, notification.kind.value, "retried").inc()
        error = state.outcome.exception() if state.outcome is not None else None
        self._log.warning(
            "notification_retrying",
            channel=lane.name,
            kind=notification.kind.value,
            key=notification.key,
            attempt=state.attempt_number,
            wait_seconds=round(state.upcoming_sleep, 2),
            error=str(error),
        )

    def _dropped(self, channel: str, notification: Notification, reason: str) -> None:
        self.metrics.notifications.labels(channel, notification.kind.value, "dropped").inc()
        self._log.warning(
            "notification_dropped", channel=channel, kind=notification.kind.value, key=notification.key, reason=reason
        )

    def _finish(self, key: str, channel: str, *, settled: bool) -> None:
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                return
            pending.channels.discard(channel)
            pending.settled = pending.settled and settled
            if pending.channels:
                return
        if pending.settled:
            try:
                self.ledger.mark(key)
            except Exception:  # noqa: BLE001 - logged; the key may then be sent again, never lost
                self._log.exception("notification_ledger_failed", key=key)
        with self._lock:
            del self._pending[key]
            self._settled.notify_all()

    # --- shutdown ----------------------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> bool:
        """Stop accepting notifications, deliver what is queued within `timeout` seconds, then
        abandon the rest (counted as dropped). True when everything queued was settled in time."""
        with self._lock:
            if self._closed:
                return not any(lane.thread and lane.thread.is_alive() for lane in self._lanes)
            self._closed = True
            for lane in self._lanes:
                lane.queue.put_nowait(_CLOSE)
        deadline = time.monotonic() + max(timeout, 0.0)
        for lane in self._lanes:
            if lane.thread is not None:
                lane.thread.join(max(deadline - time.monotonic(), 0.0))
        flushed = not any(lane.thread and lane.thread.is_alive() for lane in self._lanes)
        # Interrupt rate-limit waits and backoff; a request in flight ends at its own timeout.
        self._stop.set()
        for lane in self._lanes:
            if lane.thread is not None and not lane.thread.is_alive():
                lane.channel.close()
        if not flushed:
            self._log.warning("notifications_abandoned", pending=self.pending(), timeout_seconds=timeout)
        return flushed
