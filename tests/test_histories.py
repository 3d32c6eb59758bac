"""Every history the runner writes replays through the lifecycle table: a property test over
random scripts, run by the real runner against the scripted model over real HTTP."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentctl.domain.session import ScriptToolCall, ScriptTurn, SessionInfo, TaskSpec
from agentctl.errors import ModelError
from agentctl.llm.openai_chat import ModelConfig, OpenAIModelClient
from agentctl.llm.scripted import ScriptedModel, ScriptedServer
from agentctl.loop.runner import Runner
from agentctl.store import open_store
from agentctl.testing import CharCounter
from agentctl.tools import ToolRegistry
from agentctl.tools.approval import ApprovalPolicy
from agentctl.usecases.verify import path_problems, tree_problems


def call(name: str, **arguments: Any) -> ScriptToolCall:
    return ScriptToolCall(name=name, arguments=arguments)


# What a model may do at any turn, in or out of order: the runner must keep the lifecycle
# whatever comes (an out-of-order call is a tool error, never a bad transition).
MOVES = [
    ScriptTurn(tool_calls=(call("submit_plan", steps=["a", "b"]),)),
    ScriptTurn(tool_calls=(call("complete_step", summary="did it"),)),
    ScriptTurn(tool_calls=(call("ask_user", question="ok?"),)),
    ScriptTurn(tool_calls=(call("remember", key="k", value="v"),)),
    ScriptTurn(tool_calls=(call("finish", result="done"),)),
    ScriptTurn(content="Just text."),
    ScriptTurn(content=""),
    ScriptTurn(tool_calls=(ScriptToolCall(name="submit_plan", arguments='{"steps": [1'),)),
    ScriptTurn(tool_calls=(call("no_such_tool"),)),
    ScriptTurn(tool_calls=(call("complete_step", summary="x"), call("finish", result="y"))),
]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=st.lists(st.sampled_from(MOVES), min_size=1, max_size=10),
    answers=st.lists(st.sampled_from(["y", "no", "next Monday"]), max_size=4),
)
def test_every_history_the_runner_writes_replays_through_the_lifecycle(
    script: list[ScriptTurn], answers: list[str]
) -> None:
    store = open_store("memory:")
    plan = ScriptTurn(tool_calls=(call("submit_plan", steps=["a"]),))
    finish = ScriptTurn(tool_calls=(call("finish", result="done"),))
    model = ScriptedModel((*script, *[plan, finish] * 10))
    with ScriptedServer(model) as server:
        config = ModelConfig(model="m", base_url=server.base_url, api_key=None, max_retries=0)
        clock = iter(f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}" for n in range(10_000))
        runner = Runner(
            store,
            lambda: OpenAIModelClient(config),
            CharCounter,
            ToolRegistry(policy=ApprovalPolicy()),
            lambda: next(clock),
        )
        runner.start(SessionInfo(id="s", spec=TaskSpec(goal="g"), model="m", created_at="t"), "")
        pending = list(answers)
        for _ in range(6):  # resume with each answer, as a user would across terminals
            answer = pending.pop(0) if pending else "y"
            if store.head("s").to_state.value != "waiting_feedback":
                answer = None
            try:
                runner.run("s", answer=answer, ask=None, max_turns=12)
            except ModelError:
                break  # the script ran out: an error checkpoint, a history all the same
    history = store.history("s")
    assert tree_problems(history) == []
    assert path_problems(history, history[-1].id) == []


def test_a_step_seen_legal_before_is_still_checked_in_its_place() -> None:
    """The path walk passes common steps quickly once their transition is known legal: a
    checkpoint with that same transition but the wrong parent or starting state is damage."""
    from agentctl.store.base import CheckpointSummary

    def c(n: int, parent: int | None, kind: str, a: str, b: str) -> CheckpointSummary:
        return CheckpointSummary(n, parent, kind, a, b, f"2026-01-01T00:00:0{n}", {})

    sound = [
        c(1, None, "new_task", "idle", "planning"),
        c(2, 1, "model_reply", "planning", "planning"),
        c(3, 2, "model_reply", "planning", "planning"),
    ]
    assert path_problems(sound, 3) == []
    assert path_problems(sound, 3) == []  # and again, with the transition now remembered
    wrong_start = [*sound, c(4, 3, "model_reply", "executing", "executing")]
    assert "starts from executing" in path_problems(wrong_start, 4)[0]
    skipped = [*sound, c(4, 2, "model_reply", "planning", "planning")]
    assert "parent 2, expected 3" in path_problems(skipped, 4)[0]
