"""The notifier against local webhook receivers: once per key, nothing lost when a channel recovers,
never waiting for a channel, rate-limited, counted, and flushed at shutdown."""

from __future__ import annotations

import threading

from structlog.testing import capture_logs

from agent import logs
from agent.notify import (
    Kind,
    MemoryLedger,
    Notification,
    Notifier,
    RecordingChannel,
    StaticUrl,
    WebhookChannel,
)
from tests.notify.conftest import SECRET_PATH, FakeTime, sent


def note(key: str, kind: Kind = Kind.APPLIED, **fields: object) -> Notification:
    values: dict[str, object] = {"cluster": "prod", "service": "web", "action": "raise_grace_period"}
    values.update(fields)
    return Notification(kind=kind, key=key, **values)  # type: ignore[arg-type]


def notifier(channels, metrics, *, time: FakeTime | None = None, **options) -> Notifier:
    time = time or FakeTime()
    return Notifier(channels, metrics=metrics, log=logs.logger(), clock=time.clock, sleep=time.sleep, **options)


def webhook(receiver, **options) -> WebhookChannel:
    return WebhookChannel(StaticUrl(receiver.url), **options)


def test_one_message_per_key_over_repeated_submits_and_a_restart(receiver_factory, metrics):
    receiver = receiver_factory()
    ledger = MemoryLedger()  # the agent backs it with its persistent state
    first = notifier([webhook(receiver)], metrics, ledger=ledger)
    for _pass in range(5):  # five passes see the same proposal in the same state
        first.submit(note("p-1:applied"))
    assert first.flush(10)
    for _pass in range(5):
        first.submit(note("p-1:applied"))
    assert first.flush(10)
    first.submit(note("p-1:verified", Kind.VERDICT, verdict="verified"))  # a change of state
    assert first.close(10)

    restarted = notifier([webhook(receiver)], metrics, ledger=ledger)
    restarted.submit(note("p-1:applied"))
    restarted.submit(note("p-1:verified", Kind.VERDICT, verdict="verified"))
    restarted.submit(note("p-2:applied"))
    assert restarted.close(10)

    headers = [body["blocks"][0]["text"]["text"] for body in receiver.requests]
    assert headers == [
        "Applied: raise_grace_period to prod/web",
        "Verified: raise_grace_period on prod/web",
        "Applied: raise_grace_period to prod/web",  # p-2: a new proposal
    ]
    assert sent(metrics, "webhook", "applied", "sent") == 2
    assert sent(metrics, "webhook", "verdict", "sent") == 1
    assert ledger.seen("p-1:applied") and ledger.seen("p-2:applied")


def test_nothing_is_lost_when_the_channel_recovers(receiver_factory, metrics):
    receiver = receiver_factory(answer=lambda n: 500 if n <= 4 else 200)
    hub = notifier([webhook(receiver)], metrics, max_attempts=6)
    for number in range(1, 4):
        hub.submit(note(f"p-{number}:applied", service=f"web-{number}"))
    assert hub.close(10)

    assert receiver.answered == [500, 500, 500, 500, 200, 200, 200]
    services = [body["blocks"][0]["text"]["text"] for body in receiver.delivered]
    assert services == [f"Applied: raise_grace_period to prod/web-{n}" for n in (1, 2, 3)]  # in order
    assert sent(metrics, "webhook", "applied", "retried") == 4
    assert sent(metrics, "webhook", "applied", "sent") == 3
    assert sent(metrics, "webhook", "applied", "failed") == 0


def test_a_channel_that_never_recovers_is_given_up_counted_and_logged_without_its_url(receiver_factory, metrics):
    receiver = receiver_factory(answer=lambda _n: 500)
    time = FakeTime()
    hub = notifier([webhook(receiver)], metrics, time=time, max_attempts=4)
    with capture_logs() as lines:
        hub.submit(note("p-1:applied"))
        assert hub.close(10)

    assert len(receiver.requests) == 4
    assert len(time.waits) == 3 and all(wait > 0 for wait in time.waits)  # backoff between attempts
    assert sent(metrics, "webhook", "applied", "retried") == 3
    assert sent(metrics, "webhook", "applied", "failed") == 1
    failed = [line for line in lines if line["event"] == "notification_failed"]
    assert failed == [
        {
            "event": "notification_failed",
            "log_level": "error",
            "channel": "webhook",
            "kind": "applied",
            "key": "p-1:applied",
            "cluster": "prod",
            "service": "web",
            "error": "webhook answered HTTP 500",
            "retryable": True,
        }
    ]
    assert SECRET_PATH not in repr(lines)
    assert hub.ledger.seen("p-1:applied")  # given up: not sent again on every pass


def test_a_receiver_that_times_out_is_retried_then_given_up(receiver_factory, metrics):
    receiver = receiver_factory(hold=True)  # answers only when released: the read times out
    channel = webhook(receiver, connect_timeout=2.0, read_timeout=0.2)
    hub = notifier([channel], metrics, max_attempts=2)
    with capture_logs() as lines:
        hub.submit(note("p-1:applied"))
        assert hub.flush(30)
    hub.close(5)

    assert len(receiver.requests) == 2
    assert sent(metrics, "webhook", "applied", "failed") == 1
    errors = [line["error"] for line in lines if line["event"] in ("notification_retrying", "notification_failed")]
    assert errors == ["webhook timed out (ReadTimeout)"] * 2
    assert SECRET_PATH not in repr(lines)


def test_submit_returns_while_a_channel_hangs(receiver_factory, metrics):
    receiver = receiver_factory(hold=True)
    delivered = threading.Event()

    class Signalling(RecordingChannel):
        def send(self, notification):
            super().send(notification)
            delivered.set()

    recording = Signalling("sns")
    hub = notifier([webhook(receiver, read_timeout=60.0), recording], metrics)
    hub.submit(note("p-1:applied"))
    assert receiver.arrived.wait(10)  # the webhook worker is inside its request, held by the receiver

    # A pass submits while the receiver still holds the first request. If submit waited for the
    # channel this thread could not finish before `release` is set, which happens only afterwards.
    submitted = threading.Event()

    def a_pass() -> None:
        for number in (2, 3):
            hub.submit(note(f"p-{number}:applied"))
        submitted.set()

    passing = threading.Thread(target=a_pass)
    passing.start()
    assert submitted.wait(30)
    assert not receiver.release.is_set() and receiver.answered == []
    assert hub.queued("webhook") == 2  # waiting behind the held request
    assert delivered.wait(30)  # the other channel is not held up by the hanging one
    assert hub.flush(0) is False

    receiver.release.set()
    assert hub.close(30)
    assert receiver.answered == [200, 200, 200]
    assert [n.key for n in recording.sent] == ["p-1:applied", "p-2:applied", "p-3:applied"]


def test_a_full_queue_drops_with_a_log_line_and_a_metric_and_the_next_pass_sends_it(receiver_factory, metrics):
    receiver = receiver_factory(hold=True)
    hub = notifier([webhook(receiver, read_timeout=60.0)], metrics, queue_size=2)
    hub.submit(note("p-1:applied"))
    assert receiver.arrived.wait(10)
    with capture_logs() as lines:
        for number in (2, 3, 4):
            hub.submit(note(f"p-{number}:applied"))
    assert [line for line in lines if line["event"] == "notification_dropped"] == [
        {
            "event": "notification_dropped",
            "log_level": "warning",
            "channel": "webhook",
            "kind": "applied",
            "key": "p-4:applied",
            "reason": "queue_full",
        }
    ]
    assert sent(metrics, "webhook", "applied", "dropped") == 1

    receiver.release.set()
    assert hub.flush(30)
    assert not hub.ledger.seen("p-4:applied")
    hub.submit(note("p-4:applied"))  # the next pass sees the same change, and now there is room
    assert hub.close(30)
    assert len(receiver.delivered) == 4


def test_rate_limit_per_channel(metrics):
    time = FakeTime()
    slow, fast = RecordingChannel("webhook"), RecordingChannel("sns")
    received: list[float] = []

    class Timed(RecordingChannel):
        def send(self, notification):
            received.append(time.clock())
            super().send(notification)

    timed = Timed("webhook")
    hub = notifier([timed], metrics, time=time, rate_per_minute=2, burst=2)
    for number in range(5):
        hub.submit(note(f"p-{number}:applied"))
    assert hub.close(10)
    assert received == [0.0, 0.0, 30.0, 60.0, 90.0]  # a burst of 2, then one every 30 s
    assert time.waits == [30.0, 30.0, 30.0]
    assert slow.sent == [] and fast.sent == []

    # Each channel has its own budget: a second channel is not slowed by the first one's.
    time = FakeTime()
    first, second = RecordingChannel("webhook"), RecordingChannel("sns")
    hub = notifier([first, second], metrics, time=time, rate_per_minute=60, burst=3)
    for number in range(3):
        hub.submit(note(f"p-{number}:applied"))
    assert hub.close(10)
    assert time.waits == [] and len(first.sent) == len(second.sent) == 3


def test_routing_by_policy_channels(metrics):
    sns, chat = RecordingChannel("sns"), RecordingChannel("webhook")
    hub = notifier([sns, chat], metrics)
    with capture_logs() as lines:
        hub.submit(note("p-1:applied", channels=("sns",)))
        hub.submit(note("p-2:applied"))  # no channels named: every configured channel
        hub.submit(note("p-3:applied", channels=("webhook", "sns")))
        hub.submit(note("p-4:applied", channels=("pagerduty",)))
        hub.submit(note("p-5:applied", channels=("pagerduty",)))
    assert hub.close(10)
    assert [n.key for n in sns.sent] == ["p-1:applied", "p-2:applied", "p-3:applied"]
    assert [n.key for n in chat.sent] == ["p-2:applied", "p-3:applied"]
    unknown = [line for line in lines if line["event"] == "notification_channel_not_configured"]
    assert len(unknown) == 1 and unknown[0]["channel"] == "pagerduty"  # said once, not once per pass


def test_close_flushes_what_is_queued(metrics):
    recording = RecordingChannel("webhook")
    time = FakeTime()
    hub = notifier([recording], metrics, time=time, rate_per_minute=1, burst=1)
    for number in range(4):
        hub.submit(note(f"p-{number}:applied"))
    assert hub.close(10)  # waits through the (simulated) rate limit
    assert len(recording.sent) == 4
    with capture_logs() as lines:
        hub.submit(note("p-9:applied"))  # after close: dropped, said, counted
    assert [line["reason"] for line in lines if line["event"] == "notification_dropped"] == ["closed"]
    assert sent(metrics, "webhook", "applied", "dropped") == 1


def test_close_gives_up_after_its_timeout_and_leaves_the_rest_for_the_next_start(receiver_factory, metrics):
    receiver = receiver_factory(hold=True)
    ledger = MemoryLedger()
    hub = Notifier([webhook(receiver, read_timeout=60.0)], metrics=metrics, log=logs.logger(), ledger=ledger)
    hub.submit(note("p-1:applied"))
    hub.submit(note("p-2:applied"))
    assert receiver.arrived.wait(10)
    assert hub.close(0.1) is False  # p-1 is held by the receiver
    receiver.release.set()
    assert hub.flush(30)
    assert receiver.answered == [200]  # p-1 finished; p-2 was abandoned
    assert sent(metrics, "webhook", "applied", "dropped") == 1
    assert ledger.seen("p-1:applied") and not ledger.seen("p-2:applied")


def test_submit_never_raises_into_the_caller(metrics):
    class BrokenLedger:
        def seen(self, key):
            raise RuntimeError(f"state store unavailable for {key}")

        def mark(self, key):
            raise RuntimeError(f"state store unavailable for {key}")

    class Exploding(RecordingChannel):
        def send(self, notification):
            raise ValueError(f"a bug in a channel, for {notification.key}")

    recording = RecordingChannel("sns")
    hub = notifier([recording, Exploding("webhook")], metrics, ledger=BrokenLedger())
    with capture_logs() as lines:
        hub.submit(note("p-1:applied"))
        hub.submit(None)  # type: ignore[arg-type]  # not even a notification
        assert hub.close(10)
    assert [n.key for n in recording.sent] == ["p-1:applied"]  # a failing ledger does not stop delivery
    assert sent(metrics, "webhook", "applied", "failed") == 1
    events = [line["event"] for line in lines]
    assert "notification_submit_failed" in events and "notification_ledger_failed" in events
    failed = next(line for line in lines if line["event"] == "notification_failed")
    assert failed["error"] == "ValueError" and failed["retryable"] is False


def test_notifier_with_no_channel_accepts_and_sends_nothing(metrics):
    hub = notifier([], metrics)
    hub.submit(note("p-1:applied"))
    assert hub.pending() == 0 and hub.close(1)
