"""Agent state round-trips through service tags, within ECS's tag rules, and bad tags are never fatal."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from agent.state import (
    ActionRecord,
    Approval,
    Pending,
    ServiceState,
    Verification,
    read_state,
    state_tags,
    tag_changes,
)

ECS_TAG_VALUE = re.compile(r"^[\w\s.:/=+\-@]{0,256}$")
moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(  # noqa: DTZ001 - hypothesis takes naive bounds
    lambda d: d.replace(microsecond=0)
)
names = st.from_regex(r"[a-z][a-z0-9-]{0,30}", fullmatch=True)
revisions = st.builds(lambda f, r: f"{f}:{r}", names, st.integers(1, 99999))


@st.composite
def states(draw: st.DrawFn) -> ServiceState:
    actions = draw(
        st.dictionaries(
            st.sampled_from(["raise_grace_period", "rollback_task_definition", "notify"]),
            st.builds(ActionRecord, moments, st.integers(0, 9), st.sampled_from(["applied", "verified"]), names),
            max_size=3,
        )
    )
    return ServiceState(
        last_good=draw(st.none() | revisions),
        bad_revisions=tuple(draw(st.lists(revisions, max_size=4, unique=True))),
        actions=actions,
        pending=draw(st.none() | st.builds(Pending, names, moments)),
        approved=draw(st.none() | st.builds(Approval, names, moments)),
        verifying=draw(st.none() | st.builds(Verification, st.just("raise_memory"), names, names, moments, moments)),
    )


@given(states())
def test_state_round_trips_through_tags_within_ecs_limits(state):
    tags = state_tags(state)
    assert all(len(key) <= 128 and ECS_TAG_VALUE.match(value) for key, value in tags.items())
    assert read_state(tags) == state


def test_unreadable_tags_are_named_and_skipped():
    state = read_state({"ecs-medic:pending": "garbage", "ecs-medic:last-good": "web:3", "team": "payments"})
    assert state.last_good == "web:3"
    assert state.pending is None
    assert state.unreadable == ("ecs-medic:pending",)


def test_tag_changes_send_only_the_difference_and_keep_foreign_tags():
    now = datetime(2026, 4, 19, tzinfo=UTC)
    current = {
        "team": "payments",
        "ecs-medic:managed": "true",
        "ecs-medic:last-good": "web:3",
        "ecs-medic:pending": "p-1/1",
    }
    state = ServiceState(last_good="web:3", approved=Approval("p-1", now + timedelta(hours=1)))
    to_set, to_remove = tag_changes(current, state)
    assert to_set == {"ecs-medic:approved": f"p-1/{int((now + timedelta(hours=1)).timestamp())}"}
    assert to_remove == ["ecs-medic:pending"]


def test_bad_revisions_keep_the_newest_that_fit_one_tag():
    many = tuple(f"a-very-long-family-name-for-a-service:{n}" for n in range(20))
    value = state_tags(ServiceState(bad_revisions=many))["ecs-medic:bad-revisions"]
    assert len(value) <= 256
    assert value.endswith(many[-1])
