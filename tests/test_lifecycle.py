"""The lifecycle table is the whole truth: property tests over random event sequences."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentctl.domain.lifecycle import (
    CheckpointKind,
    Event,
    State,
    allowed_events,
    is_final,
    transition,
)
from agentctl.errors import InvalidTransition


def test_the_happy_path_reaches_done() -> None:
    state = State.IDLE
    for event in (
        Event.NEW_TASK,
        Event.PLAN_READY,
        Event.STEP_COMPLETE,
        Event.NEEDS_INPUT,
        Event.INPUT_RECEIVED,
        Event.TASK_COMPLETE,
    ):
        state = transition(state, event)
    assert state is State.DONE


def test_an_undeclared_transition_names_state_and_event() -> None:
    with pytest.raises(
        InvalidTransition, match="'task_complete' is not allowed in state 'planning'"
    ):
        transition(State.PLANNING, Event.TASK_COMPLETE)


def test_only_done_is_final() -> None:
    assert [s for s in State if is_final(s)] == [State.DONE]
    assert allowed_events(State.WAITING_FEEDBACK) == [Event.INPUT_RECEIVED]


@given(st.lists(st.sampled_from(list(Event)), max_size=40))
def test_random_events_from_idle_follow_the_table_and_only_a_follow_up_leaves_done(
    events: list[Event],
) -> None:
    """A walk of random events from idle: an event the table allows moves the state, any other
    is refused naming both and leaves it; from done, only a follow-up is allowed."""
    state = State.IDLE
    for event in events:
        if event in allowed_events(state):
            after = transition(state, event)
            assert isinstance(after, State)
            assert state is not State.DONE or event is Event.FOLLOW_UP
            state = after
        else:
            with pytest.raises(InvalidTransition, match=f"'{event.value}'.*'{state.value}'"):
                transition(state, event)
    assert allowed_events(State.DONE) == [Event.FOLLOW_UP]


def test_a_follow_up_takes_a_done_session_back_to_planning_and_nothing_else_does() -> None:
    assert transition(State.DONE, Event.FOLLOW_UP) is State.PLANNING
    for state in State:
        if state is not State.DONE:
            with pytest.raises(InvalidTransition):
                transition(state, Event.FOLLOW_UP)


def test_every_state_is_reachable_from_idle() -> None:
    seen, frontier = {State.IDLE}, [State.IDLE]
    while frontier:
        state = frontier.pop()
        for event in allowed_events(state):
            after = transition(state, event)
            if after not in seen:
                seen.add(after)
                frontier.append(after)
    assert seen == set(State)


def test_every_lifecycle_event_is_a_checkpoint_kind_with_the_same_value() -> None:
    assert {e.value for e in Event} <= {k.value for k in CheckpointKind}
    assert all(CheckpointKind(e.value).event is e for e in Event)
    assert CheckpointKind.MODEL_REPLY.event is None
