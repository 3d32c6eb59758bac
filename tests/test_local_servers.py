"""The context budget and the client against servers that behave like small local ones
(llama.cpp, llama-cpp-python, Ollama, vLLM), played by the scripted server: a hard window, its
own tokenizer, a summarizer that rambles, no usage report. Real HTTP, the real `openai`
client, the real runner with a budget."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from agentctl.domain.session import Message, ScriptToolCall, ScriptTurn, SessionInfo, TaskSpec
from agentctl.llm.openai_chat import ModelConfig, OpenAIModelClient, output_limit_field
from agentctl.llm.scripted import ScriptedModel, ScriptedServer
from agentctl.loop.context import (
    APPROXIMATE_MARGIN,
    SUMMARY_TOKENS,
    Budget,
    calibrated,
    fit_request,
)
from agentctl.loop.runner import Runner, Stop
from agentctl.store import open_store
from agentctl.testing import CharCounter
from agentctl.tools import ToolRegistry
from agentctl.tools.approval import ApprovalPolicy
from tests.conftest import SAMPLES, run


def call(name: str, **arguments: Any) -> ScriptToolCall:
    return ScriptToolCall(name=name, arguments=arguments)


def turn(*calls: ScriptToolCall, content: str | None = None) -> ScriptTurn:
    return ScriptTurn(content=content, tool_calls=calls)


STEPS = [f"step {n}" for n in range(8)]
LONG = tuple(turn(call("complete_step", summary=f"{n} " + "word " * 120)) for n in range(8))
SCRIPT = (turn(call("submit_plan", steps=STEPS)), *LONG, turn(call("finish", result="done")))


class Approximate(CharCounter):
    """Counts like another model's vocabulary would: approximately."""

    approximate = True


class Local:
    def __init__(self, stack: ExitStack, path: Path, model: ScriptedModel, window: int) -> None:
        self.store = open_store(f"sqlite://{path}")
        stack.callback(self.store.close)
        self.model = model
        self.url = stack.enter_context(ScriptedServer(model)).base_url
        self.budget = Budget(window, "test")

    def runner(self) -> Runner:
        config = ModelConfig(model="local", base_url=self.url, api_key=None, max_retries=0)
        clock = iter(f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}" for n in range(100_000))
        tools = ToolRegistry(policy=ApprovalPolicy(allow=("remember",)))
        return Runner(
            self.store,
            lambda: OpenAIModelClient(config),
            Approximate,
            tools,
            lambda: next(clock),
            budget=self.budget,
        )

    def start(self) -> None:
        info = SessionInfo(id="s1", spec=TaskSpec(goal="g"), model="local", created_at="t")
        self.runner().start(info, "system")

    def run(self, answer: str | None = None) -> Stop:
        return self.runner().run("s1", answer=answer, ask=None, max_turns=60).stop


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Any]:
    with ExitStack() as stack:
        made = iter(range(100))

        def make(budget: int, **options: Any) -> Local:
            kept: list[dict[str, Any]] = []
            model = ScriptedModel(SCRIPT, kept=kept, **options)
            server = Local(stack, tmp_path / f"{next(made)}.db", model, budget)
            server.start()
            return server

        yield make


def test_the_reply_reserve_is_sent_as_the_output_limit(local: Any) -> None:
    s = local(4096)
    assert s.run() is Stop.DONE
    asked = [r for r in s.model.kept or [] if r.get("tools")]
    assert {r["max_tokens"] for r in asked} == {s.budget.reply_reserve}
    assert output_limit_field(None, "gpt-4o-mini") == "max_completion_tokens"  # the OpenAI API
    assert output_limit_field(None, "o3-mini") is None  # reasoning would eat the bound
    assert output_limit_field("http://localhost:11434/v1", "o3-like-local") == "max_tokens"


def test_approximate_counts_are_calibrated_by_the_servers_own(local: Any) -> None:
    # The server counts 1.4x what we count, and refuses anything over its window: without
    # calibration every compaction would land just over it.
    s = local(4096, usage_scale=1.4, window=4096 - 1024)
    assert s.run() is Stop.DONE
    replies = [c.id for c in s.store.history("s1") if c.kind == "model_reply"]
    ratios = [s.store.get_checkpoint("s1", n).task.token_ratio for n in replies]
    assert len(ratios) > 5
    assert all(r is not None and 1.15 <= r <= 1.6 for r in ratios), ratios
    events = [c.kind for c in s.store.history("s1")]
    assert "context_compacted" in events
    assert "error" not in events  # never refused by the server
    assert calibrated(1000, None, True) == int(1000 / APPROXIMATE_MARGIN)
    assert calibrated(1000, None, False) == 1000


def test_a_rambling_summary_is_cut_and_one_that_does_not_help_is_dropped(local: Any) -> None:
    s = local(2560, summary_text="On and on. " * 2000)
    assert s.run() is Stop.DONE
    compactions = [c for c in s.store.history("s1") if c.kind == "context_compacted"]
    assert compactions
    for c in compactions:
        assert c.detail["tokens_after"] < c.detail["tokens_before"]  # never grows
    summaries = [r for r in s.model.kept or [] if not r.get("tools")]
    assert summaries
    assert all(r["max_tokens"] <= SUMMARY_TOKENS for r in summaries)
    note = next(
        m.content or ""
        for m in s.store.load("s1", compactions[0].id).messages
        if (m.content or "").startswith("[context compacted")
    )
    assert len(note) < SUMMARY_TOKENS * 4 + 600  # cut, not 22,000 characters


def test_a_turn_larger_than_the_window_cannot_wedge_the_session(tmp_path: Path) -> None:
    script = (
        turn(call("submit_plan", steps=["ask"])),
        turn(call("ask_user", question="Paste the log")),
        turn(call("finish", result="read it")),
    )
    with ExitStack() as stack:
        model = ScriptedModel(script, window=2048)
        s = Local(stack, tmp_path / "a.db", model, 2048)
        s.start()
        assert s.run() is Stop.PAUSED
        assert s.run(answer="log line\n" * 3000) is Stop.DONE  # ~7,000 tokens of answer
        answer = next(m for m in s.store.load("s1").messages if m.role == "tool")
        assert len(answer.content or "") == len("log line\n" * 3000)  # the store keeps it all


def test_fit_request_cuts_only_what_it_must() -> None:
    messages = [
        Message(role="user", content="x" * 4000, tokens=1000),
        Message(role="user", content="short", tokens=5),
    ]
    assert fit_request(messages, 2000) == messages
    fitted = fit_request(messages, 600)
    assert len(fitted[0].content or "") < 4000
    assert "cut to fit the context window" in (fitted[0].content or "")
    assert fitted[1] == messages[1]


def test_show_counts_the_tool_schemas_and_says_when_usage_was_not_reported(
    tmp_path: Path,
) -> None:
    assert run("run", str(SAMPLES / "release_notes.toml")).code == 0
    sid = run("list", "--json").json()[0]["id"]
    shown = run("show", sid, "--json").json()["context"]
    assert shown["tools_tokens"] > 500
    text = run("show", sid).stdout
    assert f"(+{shown['tools_tokens']:,} for the tool schemas)" in text
    with ExitStack() as stack:
        model = ScriptedModel(SCRIPT[:1] + SCRIPT[-1:], report_usage=False)
        s = Local(stack, tmp_path / "u.db", model, 8192)
        s.start()
        assert s.run() is Stop.DONE
        usage = s.store.head("s1").usage
        assert (usage.calls, usage.unreported, usage.prompt_tokens) == (2, 2, 0)


def test_a_multi_line_server_error_is_one_clean_line_and_a_short_key_mangles_nothing() -> None:
    from agentctl.errors import ModelError
    from agentctl.llm.scripted import Fault

    body = "Input validation error: maximum context exceeded\n  File /srv/app.py, line 3\nx"
    with ScriptedServer(ScriptedModel((), faults=[Fault(status=400, message=body)])) as srv:
        config = ModelConfig(model="m", base_url=srv.base_url, api_key="x", max_retries=0)
        with pytest.raises(ModelError) as caught:
            OpenAIModelClient(config).complete([Message(role="user", content="hi")], [], print)
    assert "\n" not in caught.value.message
    assert caught.value.message.endswith("Input validation error: maximum context exceeded")


def test_work_tools_wait_for_a_plan_whatever_the_approval_mode(tmp_path: Path) -> None:
    from agentctl.tools import work_tools

    script = (
        turn(call("write_file", path="early.txt", content="too soon")),
        turn(call("submit_plan", steps=["write"])),
        turn(call("finish", result="ok")),
    )
    with ExitStack() as stack:
        s = Local(stack, tmp_path / "a.db", ScriptedModel(script), 8192)
        tools = work_tools(tmp_path, ApprovalPolicy(yes=True))
        config = ModelConfig(model="local", base_url=s.url, api_key=None, max_retries=0)
        clock = iter(f"2026-01-01T00:00:{n:02d}" for n in range(60))
        runner = Runner(
            s.store, lambda: OpenAIModelClient(config), Approximate, tools, lambda: next(clock)
        )
        runner.start(SessionInfo(id="s1", spec=TaskSpec(goal="g"), model="m", created_at="t"), "")
        assert runner.run("s1", answer=None, ask=None, max_turns=10).stop is Stop.DONE
        results = [m.content for m in s.store.load("s1").messages if m.role == "tool"]
    assert not (tmp_path / "early.txt").exists()
    assert "write_file may run once a plan is submitted" in (results[0] or "")
