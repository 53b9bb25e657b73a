"""Agent state round-trips through service tags within ECS's tag rules, and nothing read back is believed
blindly: forged or damaged records are dropped with a problem naming them, never fatal."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.state import (
    MAX_HISTORY,
    STATE_TAG,
    ActionRecord,
    Attempt,
    CallRecord,
    Change,
    ChangeRecord,
    Episode,
    Intent,
    Pending,
    ServiceState,
    Verification,
    decode_tags,
    encode_tags,
    from_json,
    tag_changes,
    to_json,
)

NOW = datetime(2026, 4, 19, 3, 0, tzinfo=UTC)
ECS_TAG_VALUE = re.compile(r"^[\w\s.:/=+\-@]{0,256}$")
moments = st.integers(-86400 * 30, 0).map(lambda seconds: NOW + timedelta(seconds=seconds))
names = st.from_regex(r"[a-z][a-z0-9-]{0,30}", fullmatch=True)
revisions = st.builds(lambda f, r: f"{f}:{r}", names, st.integers(1, 99999))


@st.composite
def changes(draw: st.DrawFn) -> Change:
    return Change(
        token=draw(names),
        action=draw(st.sampled_from(["raise_grace_period", "raise_memory", "rollback_task_definition"])),
        policy=draw(names),
        proposal_id=draw(names),
        cause="oom",
        step=draw(st.integers(0, 3)),
        changes=(ChangeRecord("healthCheckGracePeriodSeconds", draw(st.integers(0, 600)), 240),),
        revert=draw(st.booleans()),
    )


@st.composite
def states(draw: st.DrawFn) -> ServiceState:
    change = draw(changes())
    applied = draw(moments)
    actions = draw(
        st.dictionaries(
            st.sampled_from(["raise_grace_period", "rollback_task_definition", "notify"]),
            st.builds(ActionRecord, moments, st.integers(0, 9), st.sampled_from(["applied", "verified"]), names),
            max_size=3,
        )
    )
    history = tuple(
        draw(st.lists(st.builds(Attempt, names, names, st.integers(0, 3), moments, st.just("applied")), max_size=8))
    )
    return ServiceState(
        last_good=draw(st.none() | revisions),
        bad_revisions=tuple(draw(st.lists(revisions, max_size=4, unique=True))),
        actions=actions,
        pending=draw(st.none() | st.builds(Pending, names, moments)),
        episode=draw(st.none() | st.just(Episode("oom-policy", "oom", applied, 1, 2, history))),
        verifying=draw(
            st.none()
            | st.just(Verification(change, applied, applied, applied + timedelta(seconds=600), {"revision": "a"}))
        ),
        intent=draw(
            st.none()
            | st.just(
                Intent(
                    change,
                    (CallRecord("ecs", "UpdateService", {"cluster": "prod"}, None),),
                    "host/1/abc",
                    3,
                    applied,
                    applied + timedelta(seconds=90),
                )
            )
        ),
        changed_at=draw(st.none() | moments),
        notified=tuple(draw(st.lists(names, max_size=4))),
    )


@settings(max_examples=60)
@given(states())
def test_state_round_trips_through_tags_within_ecs_limits(state):
    tags = encode_tags(state)
    assert len(tags) <= 8
    assert all(len(key) <= 128 and ECS_TAG_VALUE.match(value) for key, value in tags.items())
    decoded, problems = decode_tags(tags, NOW)
    assert problems == ()
    assert decoded == state


def test_an_empty_state_needs_no_tags():
    assert encode_tags(ServiceState()) == {}
    assert decode_tags({"team": "payments"}, NOW) == (ServiceState(), ())


def test_times_in_the_future_are_dropped_and_named():
    future = NOW + timedelta(days=3650)
    forged = ServiceState(
        last_good="web:3",
        actions={"raise_memory": ActionRecord(future, 1, "applied", "p-1")},
        pending=Pending("p-2", future),
    )
    state, problems = decode_tags(encode_tags(forged), NOW)
    assert state == ServiceState(last_good="web:3")
    assert sorted(p.where for p in problems) == [
        f"{STATE_TAG} actions.raise_memory.last_at",
        f"{STATE_TAG} pending.since",
    ]


def test_a_verification_deadline_further_out_than_any_the_agent_sets_is_dropped():
    change = Change("t", "raise_grace_period", "p", "p-1", "health_check_elb", 0, (), verify_seconds=600)
    forever = Verification(change, NOW, NOW, NOW + timedelta(days=3650))
    state, problems = decode_tags(encode_tags(ServiceState(verifying=forever)), NOW)
    assert state.verifying is None
    assert [p.where for p in problems] == [f"{STATE_TAG} verifying.deadline"]


def test_counters_past_their_bounds_are_refused_by_field():
    state = ServiceState(actions={"raise_memory": ActionRecord(NOW, 1, "applied", "p")})
    tags = encode_tags(state)
    document = to_json(state)
    document["actions"]["raise_memory"]["attempts"] = 10**9
    decoded, problems = from_json(document, NOW, where=STATE_TAG)
    assert decoded.actions == {}
    assert [p.where for p in problems] == [f"{STATE_TAG} actions.raise_memory.attempts"]
    assert decode_tags(tags, NOW)[0] == state


def test_edited_or_incomplete_state_tags_are_refused_whole():
    # Hashes do not compress: enough of them need more than one tag.
    digests = tuple(hashlib.sha256(str(n).encode()).hexdigest() for n in range(16))
    big = ServiceState(bad_revisions=tuple(f"{d[:30]}:{n}" for n, d in enumerate(digests)), notified=digests)
    tags = encode_tags(big)
    assert len(tags) > 1
    edited = dict(tags)
    edited[f"{STATE_TAG}.2"] = edited[f"{STATE_TAG}.2"][::-1]
    state, problems = decode_tags(edited, NOW)
    assert state == ServiceState()
    assert "checksum" in problems[0].why
    missing = {k: v for k, v in tags.items() if k != f"{STATE_TAG}.2"}
    assert decode_tags(missing, NOW)[0] == ServiceState()
    assert decode_tags({STATE_TAG: "garbage"}, NOW)[1][0].where == STATE_TAG


def test_history_and_lists_are_bounded():
    history = tuple(Attempt(f"t{i}", "raise_memory", 0, NOW, "applied") for i in range(20))
    state, _ = decode_tags(encode_tags(ServiceState(episode=Episode("p", "oom", NOW, 0, 1, history))), NOW)
    assert state.episode is not None
    assert len(state.episode.history) == MAX_HISTORY


def test_revisions_from_the_previous_format_are_carried_over():
    legacy = {"ecs-medic:last-good": "web:3", "ecs-medic:bad-revisions": "web:4 web:5", "ecs-medic:pending": "x"}
    assert decode_tags(legacy, NOW)[0] == ServiceState(last_good="web:3", bad_revisions=("web:4", "web:5"))


def test_tag_changes_send_only_the_difference_and_keep_foreign_tags():
    before = ServiceState(last_good="web:3")
    current = {
        "team": "payments",
        "ecs-medic:managed": "true",
        "ecs-medic:approval": "p-1 1 2 c2ln",
        "ecs-medic:last-good": "web:2",
        **encode_tags(before),
    }
    assert tag_changes(current, before) == ({}, ["ecs-medic:last-good"])
    after = replace(before, last_good="web:4")
    to_set, to_remove = tag_changes(current, after)
    assert set(to_set) == {STATE_TAG}
    assert to_remove == ["ecs-medic:last-good"]
    assert tag_changes(current, ServiceState()) == ({}, sorted(["ecs-medic:last-good", STATE_TAG]))
