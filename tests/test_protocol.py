"""The model client against servers that behave like the OpenAI-compatible servers agentctl
meets (Ollama, vLLM, LM Studio, llama.cpp, sglang, proxies), played by the scripted server over
real HTTP through the real `openai` client: cut streams, unreadable chunks, empty replies,
refusals, replies cut at the output limit, trickling and hung servers, retries, a context the
server finds too long, names repeated in every delta, answers with quotes in them.

The scripted server also refuses what the strictest servers refuse (null or empty assistant
turns, tool-call arguments that do not parse), so every test here checks that agentctl sends
only what they accept.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentctl.domain.session import Message, ScriptToolCall, ScriptTurn, SessionInfo, TaskSpec
from agentctl.domain.toolspec import ToolSpec
from agentctl.errors import ModelError
from agentctl.llm.openai_chat import ModelConfig, OpenAIModelClient
from agentctl.llm.scripted import Fault, ScriptedModel, ScriptedServer
from agentctl.loop.runner import Runner, Stop
from agentctl.store import Store, open_store
from agentctl.testing import CharCounter
from agentctl.tools import ToolRegistry
from agentctl.tools.approval import ApprovalPolicy


def call(name: str, **arguments: Any) -> ScriptToolCall:
    return ScriptToolCall(name=name, arguments=arguments)


def turn(*calls: ScriptToolCall, content: str | None = None, **extra: Any) -> ScriptTurn:
    return ScriptTurn(content=content, tool_calls=calls, **extra)


PLAN = turn(call("submit_plan", steps=["do it"]))
FINISH = turn(call("finish", result="done"))


@dataclass
class Server:
    store: Store
    model: ScriptedModel
    base_url: str
    notices: list[str] = field(default_factory=list)

    def runner(self, timeout: float = 10.0, retries: int = 0) -> Runner:
        config = ModelConfig(
            model="m", base_url=self.base_url, api_key=None, timeout=timeout, max_retries=retries
        )
        clock = iter(f"2026-01-01T00:00:{n:02d}.{n:03d}" for n in range(100_000))
        policy = ApprovalPolicy(allow=("remember",))
        return Runner(
            self.store,
            lambda: OpenAIModelClient(config, notify=self.notices.append),
            CharCounter,
            ToolRegistry(policy=policy),
            lambda: next(clock),
        )

    def start(self) -> None:
        info = SessionInfo(id="s1", spec=TaskSpec(goal="g"), model="m", created_at="t")
        self.runner().start(info, "system")

    def run(self, answer: str | None = None, **kw: Any) -> Stop:
        return self.runner(**kw).run("s1", answer=answer, ask=None, max_turns=20).stop

    def events(self) -> list[str]:
        return [c.kind for c in self.store.history("s1")]

    def requests(self) -> int:
        return sum(self.model.requests.values())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    with ExitStack() as stack:
        made = iter(range(100))

        def make(*script: ScriptTurn, **options: Any) -> Server:
            store = open_store(f"sqlite://{tmp_path / f'{next(made)}.db'}")
            stack.callback(store.close)
            model = ScriptedModel(script, **options)
            url = stack.enter_context(ScriptedServer(model)).base_url
            s = Server(store, model, url)
            s.start()
            return s

        yield make


def test_a_stream_cut_without_a_finish_reason_is_an_error_and_nothing_is_stored(
    server: Any,
) -> None:
    s = server(PLAN, FINISH, faults=[Fault(mode="cut")])
    with pytest.raises(ModelError, match="the reply was cut"):
        s.run()
    assert s.events() == ["new_task", "error"]  # no half reply
    assert s.run() is Stop.DONE


def test_an_unreadable_chunk_is_a_model_error_not_a_traceback(server: Any) -> None:
    s = server(PLAN, FINISH, faults=[Fault(mode="garbage")])
    with pytest.raises(ModelError, match="sent a reply agentctl cannot read"):
        s.run()
    assert s.events()[-1] == "error"
    assert s.run() is Stop.DONE


def test_an_empty_reply_is_nudged_and_never_sent_back_empty(server: Any) -> None:
    s = server(turn(), PLAN, turn(), FINISH)
    assert s.run() is Stop.DONE  # the server refuses an empty assistant turn: none was sent
    nudges = [c.detail for c in s.store.history("s1") if c.kind == "nudge"]
    assert nudges == [{"reason": "stop"}, {"reason": "stop"}]
    stored = [m.content for m in s.store.load("s1").messages if m.role == "assistant"]
    assert stored[0] == ""  # the store keeps what came


def test_a_refusal_is_read_as_text_and_two_in_planning_stop_the_run(server: Any) -> None:
    s = server(turn(refusal="I can't help with that."), turn(content="Still no."), PLAN, FINISH)
    assert s.run() is Stop.NO_PLAN
    assert s.requests() == 2  # not nudged until max_turns
    replies = [m.content for m in s.store.load("s1").messages if m.role == "assistant"]
    assert replies == ["I can't help with that.", "Still no."]
    assert "instead of submitting a plan, twice" in (s.store.head("s1").task.last_error or "")
    assert s.run() is Stop.DONE  # resume reminds once more


def test_a_reply_cut_at_the_output_limit_is_told_to_the_model(server: Any) -> None:
    cut = ScriptToolCall(name="submit_plan", arguments='{"steps": ["a", "b')
    s = server(turn(cut, finish_reason="length"), PLAN, FINISH)
    assert s.run() is Stop.DONE  # the cut arguments were sent back as {}, which vLLM accepts
    tool_results = [m.content or "" for m in s.store.load("s1").messages if m.role == "tool"]
    assert "cut off at the output limit" in tool_results[0]
    text_cut = server(turn(content="Let me thi", finish_reason="length"), PLAN, FINISH)
    assert text_cut.run() is Stop.DONE
    assert [c.detail for c in text_cut.store.history("s1") if c.kind == "nudge"] == [
        {"reason": "length"}
    ]


def test_the_timeout_bounds_the_whole_reply(server: Any) -> None:
    s = server(turn(content="x" * 600, stream_delay=0.05), PLAN, FINISH)
    with pytest.raises(ModelError, match=r"took longer than 0\.5 s to reply"):
        s.run(timeout=0.5)


def test_a_hung_server_is_not_retried(server: Any) -> None:
    s = server(PLAN, FINISH, faults=[Fault(status=500, hang=2.0, times=5)])
    with pytest.raises(ModelError, match=r"did not answer within 0\.5 s"):
        s.run(timeout=0.5, retries=3)
    assert s.requests() == 1


def test_retries_are_told_and_bounded(server: Any) -> None:
    s = server(PLAN, FINISH, faults=[Fault(status=503, times=2, retry_after=0.01)])
    assert s.run(retries=3) is Stop.DONE
    assert len(s.notices) == 2
    assert all("answered 503" in n and "retrying in 0.01 s" in n for n in s.notices)
    gives_up = server(PLAN, FINISH, faults=[Fault(status=500, times=9, retry_after=0.01)])
    with pytest.raises(ModelError, match="gave up after 3 attempts"):
        gives_up.run(retries=2)


READ_A_LOT = tuple(turn(call("complete_step", summary="x" * 400)) for _ in range(6))


def test_a_context_the_server_finds_too_long_is_compacted_not_resent(server: Any) -> None:
    too_long = Fault(
        status=400,
        message="This model's maximum context length is 900 tokens. However, you requested 1500.",
    )
    s = server(
        turn(call("submit_plan", steps=[f"step {n}" for n in range(6)])),
        *READ_A_LOT,
        turn(call("ask_user", question="ok?")),
        FINISH,
    )
    assert s.run() is Stop.PAUSED
    s.model.faults.append(too_long)
    assert s.run(answer="yes") is Stop.DONE
    events = s.events()
    error_at = events.index("error")
    assert events[error_at + 1] == "context_compacted"
    assert s.store.get_checkpoint("s1", error_at + 1).task.context_limit is not None
    assert s.model.summaries == 1


def test_names_repeated_in_every_delta_are_taken_once(server: Any) -> None:
    s = server(PLAN, FINISH, repeat_names=True)
    assert s.run() is Stop.DONE
    names = [c.name for m in s.store.load("s1").messages for c in m.tool_calls]
    assert names == ["submit_plan", "finish"]


def test_an_answer_with_quotes_fills_a_scripted_argument_safely(server: Any) -> None:
    s = server(
        PLAN,
        turn(call("ask_user", question="When?")),
        turn(call("finish", result="Booked for {{last_input}}")),
    )
    assert s.run() is Stop.PAUSED
    assert s.run(answer='the "next" Monday') is Stop.DONE
    assert s.store.head("s1").task.result == 'Booked for the "next" Monday'


def test_tools_are_offered_with_tool_choice_auto() -> None:
    kept: list[dict[str, Any]] = []
    with ScriptedServer(ScriptedModel((FINISH,), kept=kept)) as srv:
        config = ModelConfig(model="m", base_url=srv.base_url, api_key=None, max_retries=0)
        tools = [ToolSpec("finish", "", {})]
        OpenAIModelClient(config).complete([Message(role="user", content="hi")], tools, print)
    assert kept[0]["tool_choice"] == "auto"
