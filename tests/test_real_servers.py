"""Issue 31, real servers round three: what Gemini's OpenAI endpoint, gateways (new-api,
LiteLLM), Azure OpenAI's v1 endpoint, proxies, and llama-server with a strict chat template do,
played by the scripted server over real HTTP through the real `openai` client and the real
runner. Each fault mode of the scripted server names the server it imitates (scripted.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentctl.domain.session import Message, ScriptToolCall, ScriptTurn, SessionInfo, TaskSpec
from agentctl.llm.openai_chat import ModelConfig, OpenAIModelClient
from agentctl.llm.scripted import ScriptedModel, ScriptedServer
from agentctl.loop.context import Budget
from agentctl.loop.runner import Runner, Stop
from agentctl.store import Store, open_store
from agentctl.testing import CharCounter
from agentctl.tools import ToolRegistry
from agentctl.tools.approval import ApprovalPolicy
from tests.conftest import run


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
    waits: list[float] = field(default_factory=list)

    def client(self, retries: int = 0, **config: Any) -> OpenAIModelClient:
        settings = ModelConfig(
            model="m", base_url=self.base_url, api_key=None, max_retries=retries, **config
        )
        return OpenAIModelClient(settings, notify=self.notices.append, sleep=self.waits.append)

    budget: Budget | None = None

    def runner(self, retries: int = 0, **config: Any) -> Runner:
        clock = iter(f"2026-01-01T00:00:{n:02d}.{n:03d}" for n in range(100_000))
        policy = ApprovalPolicy(allow=("remember",))
        return Runner(
            self.store,
            lambda: self.client(retries, **config),
            CharCounter,
            ToolRegistry(policy=policy),
            lambda: next(clock),
            budget=self.budget,
        )

    def start(self, goal: str = "g") -> None:
        info = SessionInfo(id="s1", spec=TaskSpec(goal=goal), model="m", created_at="t")
        self.runner().start(info, "system")

    def run(self, answer: str | None = None, max_turns: int = 20, **kw: Any) -> Stop:
        return self.runner(**kw).run("s1", answer=answer, ask=None, max_turns=max_turns).stop

    def events(self) -> list[str]:
        return [c.kind for c in self.store.history("s1")]

    def requests(self) -> int:
        return sum(self.model.requests.values())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    with ExitStack() as stack:
        made = iter(range(100))

        def make(*script: ScriptTurn, window: int | None = None, **options: Any) -> Server:
            store = open_store(f"sqlite://{tmp_path / f'{next(made)}.db'}")
            stack.callback(store.close)
            model = ScriptedModel(script, kept=[], **options)
            url = stack.enter_context(ScriptedServer(model)).base_url
            s = Server(store, model, url)
            s.budget = Budget(window, "test") if window else None
            s.start()
            return s

        yield make


# -- 1. a goal longer than a file name; error lines bounded ---------------------------------


def test_a_goal_longer_than_a_file_name_is_a_goal(agentctl_home: Path) -> None:
    goal = "Read the release notes in this folder and " + "say what changed and why, " * 10
    assert len(goal.encode()) > 255
    with ScriptedServer(ScriptedModel((PLAN, FINISH))) as srv:
        result = run("run", goal, "--model", "m", env={"OPENAI_BASE_URL": srv.base_url})
    assert result.code == 0, result.stderr
    [session] = run("list", "--json").json()
    assert run("show", session["id"], "--json").json()["task"]["goal"] == goal.strip()


def test_an_error_line_is_bounded_whatever_it_quotes() -> None:
    result = run("run", "notes/" + "a" * 3_000 + ".toml")  # a name no file system takes
    assert result.code == 2
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(line) < 700
    assert "characters left out" in line


# -- 7. Retry-After over 60 s ----------------------------------------------------------------


def test_a_long_retry_after_is_honoured_and_one_past_the_bound_says_when_to_resume(
    server: Any,
) -> None:
    from agentctl.errors import ModelError
    from agentctl.llm.openai_chat import MAX_RETRY_AFTER_S
    from agentctl.llm.scripted import Fault

    s = server(PLAN, FINISH, faults=[Fault(status=503, retry_after=300)])
    assert s.run(retries=3) is Stop.DONE
    assert s.waits == [300]  # not cut to 60 s: three retries, each 240 s early
    assert "retrying in 300 s" in s.notices[0]
    far = server(PLAN, FINISH, faults=[Fault(status=503, retry_after=MAX_RETRY_AFTER_S + 1)])
    with pytest.raises(ModelError, match=r"asks to wait 601 s.*: resume after \d\d:\d\d"):
        far.run(retries=3)
    assert far.waits == []  # not waited
    assert far.requests() == 1  # nor asked again
    assert far.events()[-1] == "error"
    assert far.run() is Stop.DONE  # the resume it names


# -- 8. the informative part of a server's error ----------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (  # llama-cpp-python: FastAPI's validation error
            {"body": {"detail": [{"loc": ["body", "messages", 1], "msg": "Field required"}]}},
            "answered 422: body.messages.1: Field required",
        ),
        (  # Gemini's OpenAI endpoint: a list of errors
            {"body": [{"error": {"code": 400, "message": "API key not valid.", "status": "X"}}]},
            "answered 400: API key not valid.",
        ),
        (  # a heading, then the cause
            {"message": "1 validation error:\n  messages.1.content\n  Input should be a string"},
            "answered 400: 1 validation error: messages.1.content: Input should be a string",
        ),
        (  # llama-server: the cause four lines later
            {
                "message": "Unable to generate parser for this template.\n"
                "Automatic parser generation failed for the tools\n"
                "  at line 12\n\n"
                "Cause: unknown filter tojson_pretty"
            },
            "answered 400: Unable to generate parser for this template: "
            "Cause: unknown filter tojson_pretty",
        ),
    ],
)
def test_the_error_line_says_what_the_server_meant(fault: dict[str, Any], expected: str) -> None:
    from agentctl.errors import ModelError
    from agentctl.llm.scripted import Fault

    status = 422 if "detail" in str(fault) else 400
    with ScriptedServer(ScriptedModel((), faults=[Fault(status=status, **fault)])) as srv:
        config = ModelConfig(model="m", base_url=srv.base_url, api_key=None, max_retries=0)
        with pytest.raises(ModelError) as caught:
            OpenAIModelClient(config).complete([Message(role="user", content="hi")], [], print)
    assert caught.value.message.endswith(expected), caught.value.message


# -- 9. a web page, an empty stream ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ({"mode": "html", "status": 200}, "answered with a web page, not the API (a proxy or"),
        ({"mode": "html", "status": 403}, "answered 403 with a web page, not the API"),
        ({"mode": "empty"}, "sent an empty reply"),
    ],
)
def test_a_web_page_and_an_empty_stream_are_said_as_what_they_are(
    server: Any, fault: dict[str, Any], said: str
) -> None:
    from agentctl.errors import ModelError
    from agentctl.llm.scripted import Fault

    s = server(PLAN, FINISH, faults=[Fault(**fault)])
    with pytest.raises(ModelError) as caught:
        s.run()
    assert said in caught.value.message
    assert "cut" not in caught.value.message
    assert s.run() is Stop.DONE


# -- 2. parallel tool calls that share an index ---------------------------------------------

TWO_AT_ONCE = turn(call("complete_step", summary="read both"), call("finish", result="done"))
TWO_ALIKE = turn(call("remember", key="a", value="1"), call("remember", key="b", value="2"))


@pytest.mark.parametrize(
    "shape",
    [
        {"call_index": "none"},  # Gemini's OpenAI endpoint
        {"call_index": "zero"},  # Gemini behind a gateway
        {"call_index": "zero", "repeat_names": True},
        {"call_index": "zero", "omit_call_ids": True},
        {"call_index": "none", "omit_call_ids": True, "repeat_names": True},
    ],
)
def test_parallel_calls_that_share_an_index_stay_apart(server: Any, shape: dict[str, Any]) -> None:
    import json

    s = server(PLAN, TWO_ALIKE, TWO_AT_ONCE, **shape)
    assert s.run() is Stop.DONE
    calls = [c for m in s.store.load("s1").messages for c in m.tool_calls]
    assert [c.name for c in calls] == [
        "submit_plan",
        "remember",
        "remember",
        "complete_step",
        "finish",
    ]
    assert [json.loads(c.arguments) for c in calls][1:3] == [
        {"key": "a", "value": "1"},
        {"key": "b", "value": "2"},
    ]
    assert len({c.id for c in calls}) == len(calls)


# -- 3. sessions that failed at every resume -----------------------------------------------

LONG = tuple(turn(call("complete_step", summary=f"{n} " + "word " * 120)) for n in range(6))


def test_a_strict_chat_template_gets_roles_in_turn_after_a_compaction(server: Any) -> None:
    steps = [f"step {n}" for n in range(6)]
    s = server(
        turn(call("submit_plan", steps=steps)),
        turn(content="Thinking about it."),  # a text reply: nudged (user after assistant)
        *LONG,
        FINISH,
        window=2048,
        strict_roles=True,  # llama-server with Gemma's template
    )
    assert s.run() is Stop.DONE
    assert "context_compacted" in s.events()
    assert "error" not in s.events()
    # The store keeps its own form: the goal and the note are two messages there.
    at = next(c.id for c in s.store.history("s1") if c.kind == "context_compacted")
    stored = s.store.load("s1", at).messages
    assert [m.role for m in stored[:3]] == ["system", "user", "user"]
    assert (stored[2].content or "").startswith("[context compacted")


def test_gemini_thought_signatures_are_kept_and_sent_back(server: Any) -> None:
    s = server(
        PLAN,
        turn(call("ask_user", question="Which one?")),
        FINISH,
        thought_signatures=True,  # Gemini 3
        call_index="none",
    )
    assert s.run() is Stop.PAUSED
    assert s.run(answer="the first") is Stop.DONE  # a resume: read back from the store
    calls = [c for m in s.store.load("s1").messages for c in m.tool_calls]
    assert all(c.provider_data and c.provider_data["extra_content"]["google"] for c in calls)
    last = s.model.kept[-1]  # type: ignore[index]
    sent = [c for m in last["messages"] for c in m.get("tool_calls") or []]
    assert [c["extra_content"] for c in sent] == [
        c.provider_data["extra_content"] for c in calls[:2]
    ]  # type: ignore[index]


@pytest.mark.parametrize(
    ("refused", "code", "instead"),
    [
        ("stream_options", "unknown_parameter", None),  # a gateway (new-api, LiteLLM)
        ("max_tokens", "unsupported_parameter", "max_completion_tokens"),  # Azure OpenAI v1
    ],
)
def test_a_refused_request_field_is_dropped_once_and_remembered(
    server: Any, refused: str, code: str, instead: str | None
) -> None:
    s = server(
        PLAN,
        turn(call("ask_user", question="ok?")),
        FINISH,
        refuse_fields={refused: code},
        window=8192,
    )
    assert s.run() is Stop.PAUSED
    assert s.run(answer="yes") is Stop.DONE  # a resume remembers it
    sent = s.model.kept or []
    assert [refused in r for r in sent] == [True] + [False] * (len(sent) - 1)
    if instead:
        assert all(instead in r for r in sent[1:])
    assert len(s.notices) == 1
    assert f"refused the request field `{refused}`" in s.notices[0]
    assert s.store.head("s1").task.refused_params == (refused,)


def test_a_tool_call_without_a_name_is_sent_back_with_one_and_told(server: Any) -> None:
    s = server(PLAN, turn(ScriptToolCall(name="", arguments={})), FINISH)
    assert s.run() is Stop.DONE  # OpenAI and Azure refuse an empty name: none was sent
    messages = s.store.load("s1").messages
    assert [c.name for m in messages for c in m.tool_calls][1] == ""  # the store keeps it
    told = [m.content or "" for m in messages if m.role == "tool"][1]
    assert "your tool call had no name (shown as unnamed_tool)" in told


# -- 4. replies that make no progress --------------------------------------------------------


def test_replies_in_a_row_without_a_tool_call_stop_the_run_resumably(server: Any) -> None:
    cut = turn(content="Let me think about th", finish_reason="length")  # SmolLM2 at its cap
    s = server(PLAN, cut, turn(), cut, cut, FINISH)  # Gemma through a shim: empty
    assert s.run() is Stop.NO_PROGRESS
    assert s.requests() == 4  # not nudged until max_turns
    error = s.store.head("s1").task.last_error or ""
    assert "no progress in 3 replies in a row (2 cut at the output limit, 1 empty)" in error
    assert "try a larger model or context window" in error
    assert s.run() is Stop.DONE  # resume: nudged again, 3 more tries


def test_the_users_answer_and_a_tool_call_count_as_progress(server: Any) -> None:
    empty = turn()
    s = server(PLAN, empty, empty, FINISH)
    assert s.run() is Stop.DONE
    steps = server(
        PLAN,
        turn(content="Which file?"),
        turn(content="Which file, please?"),  # a question to the user
        empty,
        empty,
        FINISH,
    )
    assert steps.run() is Stop.PAUSED
    assert steps.run(answer="a.txt") is Stop.DONE


# -- 6. calibration on what changes ----------------------------------------------------------


@pytest.mark.parametrize(("window", "words"), [(2048, 60), (3072, 150)])
def test_counts_are_calibrated_on_schemas_and_text_apart(
    tmp_path: Path, window: int, words: int
) -> None:
    """The server's tokenizer counts the schemas as we do and text 1.35x (SmolLM2's against
    cl100k_base is 1.0x and 1.14-1.18x): a ratio learned on the earlier, schema-heavier
    requests let a later, text-heavier one overrun the window."""
    from agentctl.llm.scripted import prompt_tokens
    from tests.test_local_servers import Local

    steps = [f"step {n}" for n in range(12)]
    script = (
        turn(call("submit_plan", steps=steps)),
        *(turn(call("complete_step", summary=f"{n} " + "word " * words)) for n in range(12)),
        FINISH,
    )
    server_window = window - Budget(window, "").reply_reserve
    with ExitStack() as stack:
        model = ScriptedModel(
            script, kept=[], usage_scale=1.35, tools_scale=1.0, window=server_window
        )
        s = Local(stack, tmp_path / "a.db", model, window)
        s.start()
        assert s.run() is Stop.DONE
        events = [c.kind for c in s.store.history("s1")]
    assert "context_compacted" in events
    assert "error" not in events  # never refused by the server
    counted = [prompt_tokens(r, 1.35, 1.0) for r in model.kept or [] if r.get("tools")]
    assert max(counted) <= server_window


def test_the_fit_tells_the_fixed_part_from_the_text() -> None:
    from agentctl.loop.context import calibrated, observed, text_line

    fit = None
    for text in (100, 400, 900, 1600):
        fit = observed(fit, text, int(450 + 1.35 * text))
    line = text_line(fit)
    assert line is not None
    assert line[0] == pytest.approx(450, abs=2)
    assert line[1] == pytest.approx(1.35, abs=0.01)
    # 1536 server tokens: 450 fixed (we count them 500), then (1536 - 450) / 1.35 of text
    assert calibrated(1536, 1.1, True, fit, 500) == pytest.approx(500 + 1086 / 1.35, abs=3)
    assert text_line(observed(None, 100, 600)) is None  # one request tells nothing apart


# -- 5. small windows: no thrash, no summary that costs more than it saves -------------------


def small_window_run(
    tmp_path: Path, window: int, words: int, steps: int, goal: str = "say hello"
) -> tuple[ScriptedModel, Store]:
    """A session at `window` with every work tool offered (their schemas take 931 tokens of
    cl100k_base, lean 793), replies of about `words` words each."""
    from agentctl.tools import work_tools
    from tests.test_local_servers import Approximate

    script = (
        turn(call("submit_plan", steps=[f"step {n}" for n in range(steps)])),
        *(turn(call("complete_step", summary=f"{n} " + "word " * words)) for n in range(steps)),
        FINISH,
    )
    model = ScriptedModel(script, kept=[], window=window - Budget(window, "").reply_reserve)
    store = open_store(f"sqlite://{tmp_path / 'small.db'}")
    with ScriptedServer(model) as srv:
        config = ModelConfig(model="local", base_url=srv.base_url, api_key=None, max_retries=0)
        clock = iter(f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}" for n in range(100_000))

        def runner() -> Runner:
            return Runner(
                store,
                lambda: OpenAIModelClient(config),
                Approximate,
                work_tools(tmp_path, ApprovalPolicy()),
                lambda: next(clock),
                budget=Budget(window, "test"),
            )

        info = SessionInfo(id="s1", spec=TaskSpec(goal=goal), model="local", created_at="t")
        runner().start(info, "You are agentctl. " * 20)
        assert runner().run("s1", answer=None, ask=None, max_turns=60).stop is Stop.DONE
    return model, store


def test_a_small_window_compacts_less_and_summaries_cost_less_than_they_save(
    tmp_path: Path,
) -> None:
    model, store = small_window_run(tmp_path, 2048, words=100, steps=12)
    compactions = [c.detail for c in store.history("s1") if c.kind == "context_compacted"]
    assert 0 < len(compactions) <= 8  # was 11 in 12 steps: a compaction nearly every turn
    summarized = [d for d in compactions if d["strategy"] == "summarize"]
    assert model.summaries == len(summarized)  # no summary asked for that was then dropped
    asked = [r["max_tokens"] for r in model.kept or [] if not r.get("tools")]
    assert asked
    assert max(asked) <= (2048 - 512) // 8  # 300 was a fifth of what the prompt may take
    store.close()


def test_a_small_window_gets_lean_schemas(tmp_path: Path) -> None:
    model, store = small_window_run(tmp_path, 2048, words=10, steps=1)
    store.close()
    tools = (model.kept or [])[0]["tools"]
    assert len(tools) == 11  # the same tools
    read = next(t["function"] for t in tools if t["function"]["name"] == "read_file")
    assert "description" not in read["parameters"]["properties"]["path"]
    plan = next(t["function"] for t in tools if t["function"]["name"] == "submit_plan")
    assert plan["description"] == "Submit the plan: the ordered steps that will achieve the goal."


def test_tools_and_goal_larger_than_the_window_are_an_error_at_start(
    agentctl_home: Path,
) -> None:
    goal = "Summarise this log: " + "line of the log, " * 400  # about 1,700 tokens
    with ScriptedServer(ScriptedModel((PLAN, FINISH))) as srv:
        env = {"OPENAI_BASE_URL": srv.base_url, "AGENTCTL_CONTEXT_WINDOW": "2048"}
        result = run("run", goal, "--model", "m", env=env)
    assert result.code == 2, result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert "the tools and goal take" in line
    assert "of the 2,048-token window" in line
    assert "set a larger context_window" in line
    assert run("list", "--json").json() == []  # nothing half made


def test_provider_data_is_stored_versioned_and_older_messages_still_load() -> None:
    from agentctl.domain.session import Message, ToolCall
    from agentctl.llm.openai_chat import wire_message
    from agentctl.loop.context import counted_text
    from agentctl.store import codec

    old = {"schema_version": 2, "role": "assistant", "content": "", "finish_reason": "stop"}
    old["tool_calls"] = [{"id": "c1", "name": "finish", "arguments": "{}"}]
    loaded = codec.decode(Message, old)
    assert loaded.tool_calls[0].provider_data is None
    signed = {"extra_content": {"google": {"thought_signature": "c2ln" * 100}}}
    message = Message(
        role="assistant",
        tool_calls=(ToolCall(id="c1", name="finish", arguments="{}", provider_data=signed),),
    )
    again = codec.decode(Message, codec.encode(message))
    assert again == message
    wire = wire_message(again)["tool_calls"][0]
    assert wire["extra_content"] == signed["extra_content"]
    assert "c2ln" * 100 in counted_text(again)  # counted: it is sent every time


def test_a_strict_template_without_a_tool_role_gets_tool_results_as_the_users_text(
    server: Any,
) -> None:
    """llama-server with Gemma's template: tool results reach the template as user messages, so
    the two results of parallel calls are two user turns in a row, refused every time."""
    s = server(PLAN, TWO_ALIKE, turn(call("ask_user", question="ok?")), FINISH, strict_roles=True)
    assert s.run() is Stop.PAUSED
    assert s.run(answer="yes") is Stop.DONE  # a resume remembers the form
    assert "error" not in s.events()
    assert len(s.notices) == 1
    assert "refused roles that do not alternate" in s.notices[0]
    kept = s.model.kept or []
    roles = [[m["role"] for m in r["messages"]] for r in kept]
    refused = [
        n for n, r in enumerate(roles) if any(r[i : i + 2] == ["tool"] * 2 for i in range(len(r)))
    ]
    assert len(refused) == 1  # refused once; from then on the other form, a resume's too
    assert not any("tool" in r for r in roles[refused[0] + 1 :])
    assert "alternating_roles" in s.store.head("s1").task.refused_params
    stored = [m.role for m in s.store.load("s1").messages]
    assert stored.count("tool") == 5  # the store keeps its own form
