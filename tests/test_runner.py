"""Runner scenarios on the scripted model (real HTTP, real openai client): done, pause → resume,
crash → resume at every commit, malformed and forbidden tool calls, nudges, limits, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentctl.domain.lifecycle import Outcome, State
from agentctl.domain.session import Checkpoint, ScriptToolCall, ScriptTurn, SessionInfo, TaskSpec
from agentctl.errors import ModelError
from agentctl.llm.openai_chat import ModelConfig, OpenAIModelClient
from agentctl.llm.scripted import Fault, ScriptedModel, ScriptedServer
from agentctl.loop.runner import Runner, Stop
from agentctl.store import Store, open_store
from agentctl.store.base import CheckpointDraft
from agentctl.testing import CharCounter
from agentctl.tools import SideEffect, ToolOutcome, ToolRegistry, work_tools
from agentctl.tools.approval import ApprovalPolicy


def call(name: str, **arguments: Any) -> ScriptToolCall:
    return ScriptToolCall(name=name, arguments=arguments)


def turn(*calls: ScriptToolCall, content: str | None = None) -> ScriptTurn:
    return ScriptTurn(content=content, tool_calls=calls)


TRIP = (
    turn(call("submit_plan", steps=["prefs", "dates", "book"]), content="Planning."),
    turn(
        call("remember", key="airline", value="Delta"),
        call("complete_step", summary="Delta", data={"a": 1}),
    ),
    turn(call("ask_user", question="What dates?")),
    turn(
        call("complete_step", summary="dates: {{last_input}}"),
        call("finish", result="Booked for {{last_input}}"),
    ),
)


class Crash(BaseException):
    """Stands for kill -9: nothing after it runs, nothing catches it."""


@dataclass
class CrashingStore:
    """Passes through to a real store, and crashes before or after the n-th append."""

    inner: Store
    crash_at: int
    after_commit: bool
    appends: int = 0

    def append(self, session_id: str, expected_head: int, draft: CheckpointDraft) -> Checkpoint:
        self.appends += 1
        if self.appends == self.crash_at and not self.after_commit:
            raise Crash
        checkpoint = self.inner.append(session_id, expected_head, draft)
        if self.appends == self.crash_at:
            raise Crash
        return checkpoint

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Harness:
    store: Store
    model: ScriptedModel
    base_url: str
    # Remembering is allowed here: these scenarios are about the loop; tests/test_security.py
    # covers the question a `remember` asks.
    tools: ToolRegistry = field(
        default_factory=lambda: ToolRegistry(policy=ApprovalPolicy(allow=("remember",)))
    )

    def runner(self, store: Any = None) -> Runner:
        config = ModelConfig(model="scripted", base_url=self.base_url, api_key=None, max_retries=0)
        clock = iter(f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}" for n in range(10_000))
        return Runner(
            store or self.store,
            lambda: OpenAIModelClient(config),
            CharCounter,
            self.tools,
            lambda: next(clock),
        )

    def start(self, session_id: str = "s1") -> None:
        info = SessionInfo(
            id=session_id, spec=TaskSpec(goal="trip"), model="scripted", created_at="t0"
        )
        self.runner().start(info, "system prompt")

    def events(self, session_id: str = "s1") -> list[str]:
        return [c.kind for c in self.store.history(session_id)]


@pytest.fixture(params=["memory", "sqlite"])
def harness_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with ExitStack() as stack:
        made = iter(range(1000))

        def make(script: tuple[ScriptTurn, ...], tools: ToolRegistry | None = None) -> Harness:
            db = tmp_path / f"a{next(made)}.db"
            url = "memory:" if request.param == "memory" else f"sqlite://{db}"
            store = open_store(url)
            stack.callback(store.close)
            model = ScriptedModel(script)
            server = stack.enter_context(ScriptedServer(model))
            return Harness(store, model, server.base_url, *([tools] if tools else []))

        yield make


def test_a_task_pauses_for_input_and_resumes_to_done(harness_factory: Any) -> None:
    h = harness_factory(TRIP)
    h.start()
    paused = h.runner().run("s1", answer=None, ask=None, max_turns=10)
    assert paused.stop is Stop.PAUSED
    assert paused.session.state is State.WAITING_FEEDBACK
    assert paused.session.task.pending_question is not None
    assert paused.session.task.pending_question.question == "What dates?"
    assert h.store.load_profile().preferences == {"airline": "Delta"}

    done = h.runner().run("s1", answer="next Monday", ask=None, max_turns=10)
    assert done.stop is Stop.DONE
    task = done.session.task
    assert (task.outcome, task.result) == (Outcome.SUCCEEDED, "Booked for next Monday")
    assert [s.summary for s in task.completed] == ["Delta", "dates: next Monday"]
    assert task.data == {"a": 1}
    assert h.model.requests == {0: 1, 1: 1, 2: 1, 3: 1}  # every turn asked exactly once
    assert h.events() == [
        "new_task",
        "model_reply",
        "plan_ready",
        "model_reply",
        "remember",
        "step_complete",
        "model_reply",
        "needs_input",
        "input_received",
        "model_reply",
        "step_complete",
        "task_complete",
    ]
    assert done.session.checkpoint.usage.calls == 4


def test_an_interactive_answer_is_asked_for_at_the_terminal(harness_factory: Any) -> None:
    h = harness_factory(TRIP)
    h.start()
    asked: list[str] = []
    result = h.runner().run(
        "s1", answer=None, ask=lambda q: asked.append(q.question) or "Friday", max_turns=10
    )
    assert asked == ["What dates?"]
    assert result.session.task.result == "Booked for Friday"


def clean_run(h: Harness) -> list[Any]:
    h.start()
    h.runner().run("s1", answer="June", ask=None, max_turns=20)
    return final_view(h)


def final_view(h: Harness) -> list[Any]:
    s = h.store.load("s1")
    return [s.task, [m.model_dump(exclude={"tokens"}) for m in s.messages], h.events()]


@pytest.mark.parametrize("after_commit", [True, False], ids=["after-commit", "before-commit"])
def test_a_crash_at_any_commit_resumes_to_the_same_end(
    harness_factory: Any, after_commit: bool
) -> None:
    reference = clean_run(harness_factory(TRIP))
    n_appends = len(reference[2]) - 1  # all but the create
    for crash_at in range(1, n_appends + 1):
        h = harness_factory(TRIP)
        h.start()
        with pytest.raises(Crash):
            h.runner(CrashingStore(h.store, crash_at, after_commit)).run(
                "s1", answer="June", ask=None, max_turns=20
            )
        h.runner().run("s1", answer="June", ask=None, max_turns=20)
        assert final_view(h) == reference, f"crash at append {crash_at}"
        # A reply that was stored is never asked for again; one lost in a crash is asked once more.
        assert sum(h.model.requests.values()) - len(TRIP) <= (0 if after_commit else 1)


def test_malformed_arguments_and_unknown_tools_go_back_to_the_model(harness_factory: Any) -> None:
    h = harness_factory(
        (
            ScriptTurn(
                tool_calls=(ScriptToolCall(name="submit_plan", arguments='{"steps": ["a"'),)
            ),
            turn(call("submit_plan", steps=[])),
            turn(call("complete_step", summary="too early")),
            turn(call("teleport", to="Lisbon")),
            turn(call("submit_plan", steps=["a"])),
            turn(call("finish", result="ok")),
        )
    )
    h.start()
    result = h.runner().run("s1", answer=None, ask=None, max_turns=10)
    assert result.stop is Stop.DONE
    errors = [
        m.content
        for m in result.session.messages
        if m.role == "tool" and (m.content or "").startswith("Error")
    ]
    assert len(errors) == 4
    assert "arguments are not valid JSON" in errors[0]
    assert "bad arguments for submit_plan: argument 'steps' has no items" in errors[1]
    assert "complete_step is not allowed while planning" in errors[2]
    assert "unknown tool 'teleport'" in errors[3]


def test_a_call_that_breaks_its_schema_is_refused_naming_the_argument_before_anyone_is_asked(
    harness_factory: Any, tmp_path: Path
) -> None:
    """Checked before approval and before the tool runs: the model hears which argument and
    what was expected (it heard `write_file failed: 'content'`, after the user was asked)."""
    work = tmp_path / "work"
    work.mkdir()
    h = harness_factory(
        (
            turn(call("submit_plan", steps=["write"])),
            turn(call("write_file", path="notes.md")),
            turn(call("write_file", path=3, content="x")),
            turn(call("finish", result="ok", outcome="won")),
            turn(call("finish", result="ok")),
        ),
        work_tools(work, ApprovalPolicy()),  # writes ask: none is asked here
    )
    h.start()
    result = h.runner().run("s1", answer=None, ask=None, max_turns=10)
    assert result.stop is Stop.DONE
    errors = [m.content for m in result.session.messages if m.role == "tool"][1:-1]
    assert errors == [
        "Error: bad arguments for write_file: argument 'content' is missing; expected a string",
        "Error: bad arguments for write_file: argument 'path' is an integer (3); expected a string",
        "Error: bad arguments for finish: argument 'outcome' is a string (\"won\"); expected one "
        'of "succeeded", "failed"',
    ]
    assert "tool_started" not in h.events()
    assert "needs_input" not in h.events()
    assert list(work.iterdir()) == []


def test_arguments_nested_deeper_than_the_parser_goes_go_back_to_the_model(
    harness_factory: Any,
) -> None:
    deep = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError, not ValueError
    h = harness_factory(
        (
            ScriptTurn(tool_calls=(ScriptToolCall(name="submit_plan", arguments=deep),)),
            turn(call("submit_plan", steps=["a"])),
            turn(call("finish", result="ok")),
        )
    )
    h.start()
    result = h.runner().run("s1", answer=None, ask=None, max_turns=10)
    assert result.stop is Stop.DONE
    errors = [m.content or "" for m in result.session.messages if m.role == "tool"]
    assert "arguments are not valid JSON" in errors[0]


def test_text_without_tools_is_nudged_once_then_taken_as_a_question(harness_factory: Any) -> None:
    h = harness_factory(
        (
            turn(call("submit_plan", steps=["a"])),
            ScriptTurn(content="Thinking out loud."),
            ScriptTurn(content="Which city do you mean?"),
            turn(call("finish", result="for {{last_input}}")),
        )
    )
    h.start()
    paused = h.runner().run("s1", answer=None, ask=None, max_turns=10)
    assert paused.stop is Stop.PAUSED
    assert paused.session.task.pending_question is not None
    assert paused.session.task.pending_question.question == "Which city do you mean?"
    assert "nudge" in h.events()
    done = h.runner().run("s1", answer="Porto", ask=None, max_turns=10)
    assert done.session.task.result == "for Porto"
    assert done.session.messages[-3].role == "user"
    assert done.session.messages[-3].content == "Porto"


def test_the_plan_can_be_revised_while_executing(harness_factory: Any) -> None:
    h = harness_factory(
        (
            turn(call("submit_plan", steps=["a", "b"])),
            turn(call("complete_step", summary="a done")),
            turn(call("submit_plan", steps=["b1", "b2"])),
            turn(
                call("complete_step", summary="b1"),
                call("complete_step", summary="b2"),
                call("finish", result="r"),
            ),
        )
    )
    h.start()
    result = h.runner().run("s1", answer=None, ask=None, max_turns=10)
    assert result.session.task.plan == ("a", "b1", "b2")
    assert [s.step for s in result.session.task.completed] == ["a", "b1", "b2"]
    assert "plan_revised" in h.events()


def test_max_turns_stops_with_the_error_recorded(harness_factory: Any) -> None:
    h = harness_factory(TRIP)
    h.start()
    result = h.runner().run("s1", answer=None, ask=None, max_turns=1)
    assert result.stop is Stop.TURN_LIMIT
    assert result.session.state is State.EXECUTING
    assert "max_turns" in (result.session.task.last_error or "")
    assert h.events()[-1] == "error"
    assert h.runner().run("s1", answer="x", ask=None, max_turns=10).stop is Stop.DONE


def test_a_model_error_keeps_the_state_records_it_and_resume_retries(harness_factory: Any) -> None:
    h = harness_factory(TRIP)
    h.start()
    h.model.faults.append(Fault(status=500))
    with pytest.raises(ModelError, match="500") as info:
        h.runner().run("s1", answer=None, ask=None, max_turns=10)
    assert info.value.hint == "agentctl resume s1"
    head = h.store.load("s1")
    assert head.state is State.PLANNING
    assert head.checkpoint.kind == "error"
    assert "500" in (head.task.last_error or "")
    assert h.runner().run("s1", answer="x", ask=None, max_turns=10).stop is Stop.DONE
    assert h.store.load("s1").task.last_error is None


@dataclass
class CountingTool:
    """A tool with a side effect we can count, kept outside the store."""

    ledger: Path
    side_effect: SideEffect = SideEffect.WRITE
    name: str = "charge_card"
    description: str = "charge the card"
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        with self.ledger.open("a") as f:
            f.write("charged\n")
        return ToolOutcome("charged $100")


PAY = (
    turn(call("submit_plan", steps=["pay"])),
    turn(call("charge_card")),
    turn(call("finish", result="paid")),
)


def test_a_side_effect_interrupted_mid_flight_is_not_repeated(
    harness_factory: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    h = harness_factory(PAY, ToolRegistry([CountingTool(ledger)], ApprovalPolicy(yes=True)))
    h.start()
    # Crash right after the tool ran but before its result was stored (append 5 = tool_result).
    with pytest.raises(Crash):
        h.runner(CrashingStore(h.store, 5, after_commit=False)).run(
            "s1", answer=None, ask=None, max_turns=10
        )
    assert ledger.read_text() == "charged\n"
    assert h.events()[-1] == "tool_started"
    result = h.runner().run("s1", answer=None, ask=None, max_turns=10)
    assert ledger.read_text() == "charged\n"  # not charged twice
    tool_results = [m.content for m in result.session.messages if m.role == "tool"]
    assert any("outcome is unknown" in (c or "") for c in tool_results)


def test_a_side_effect_whose_result_is_stored_never_runs_again(
    harness_factory: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    h = harness_factory(PAY, ToolRegistry([CountingTool(ledger)], ApprovalPolicy(yes=True)))
    h.start()
    with pytest.raises(Crash):
        h.runner(CrashingStore(h.store, 5, after_commit=True)).run(
            "s1", answer=None, ask=None, max_turns=10
        )
    h.runner().run("s1", answer=None, ask=None, max_turns=10)
    assert ledger.read_text() == "charged\n"
    assert json.dumps(h.events()).count("tool_result") == 1
