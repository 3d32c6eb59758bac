"""The runner against an in-process model client that fails loudly (agentctl.testing): no
HTTP, no server, an in-memory store. A model call the runner should not make, or a reply it
never asks for, fails the test."""

from __future__ import annotations

import pytest

from agentctl.lifecycle import State
from agentctl.runner import Runner, Stop
from agentctl.state import Message, SessionInfo, TaskSpec, ToolCall
from agentctl.store import open_store
from agentctl.testing import CharCounter, ScriptedClient
from agentctl.tools import ToolRegistry
from agentctl.tools.approval import ApprovalPolicy


def reply(name: str, arguments: str, call_id: str = "") -> Message:
    call = ToolCall(id=call_id or f"c_{name}", name=name, arguments=arguments)
    return Message(role="assistant", content="", tool_calls=(call,))


def runner_for(client: ScriptedClient) -> Runner:
    store = open_store("memory:")
    clock = iter(f"2026-01-01T00:00:{n:02d}" for n in range(60))
    runner = Runner(
        store,
        lambda: client,
        CharCounter,
        ToolRegistry(policy=ApprovalPolicy()),
        lambda: next(clock),
    )
    info = SessionInfo(id="s", spec=TaskSpec(goal="g"), model="m", created_at="t")
    runner.start(info, "system")
    return runner


def test_a_session_runs_to_done_asking_the_model_exactly_once_per_reply() -> None:
    client = ScriptedClient(
        [
            reply("submit_plan", '{"steps": ["ask"]}'),
            reply("ask_user", '{"question": "When?"}'),
            reply("finish", '{"result": "on Monday"}'),
        ]
    )
    runner = runner_for(client)
    assert runner.run("s", answer=None, ask=None, max_turns=10).stop is Stop.PAUSED
    # Resuming a session that waits for input asks the model nothing until it is answered.
    assert runner.run("s", answer=None, ask=None, max_turns=10).stop is Stop.PAUSED
    assert len(client.requests) == 2
    done = runner.run("s", answer="Monday", ask=None, max_turns=10)
    assert (done.stop, done.session.state) == (Stop.DONE, State.DONE)
    client.assert_consumed()
    assert client.requests[-1][-1] == {
        "role": "tool",
        "content": "Monday",
        "tool_call_id": "c_ask_user",
    }


def test_an_unexpected_model_call_fails_loudly() -> None:
    client = ScriptedClient([reply("submit_plan", '{"steps": ["x"]}')])
    runner = runner_for(client)
    with pytest.raises(AssertionError, match="unexpected model call #2; the last message sent"):
        runner.run("s", answer=None, ask=None, max_turns=10)
