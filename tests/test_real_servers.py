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

from agentctl.llm import ModelConfig, OpenAIModelClient
from agentctl.runner import Runner, Stop
from agentctl.scripted import ScriptedModel, ScriptedServer
from agentctl.state import ScriptToolCall, ScriptTurn, SessionInfo, TaskSpec
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

    def runner(self, retries: int = 0, **config: Any) -> Runner:
        clock = iter(f"2026-01-01T00:00:{n:02d}.{n:03d}" for n in range(100_000))
        policy = ApprovalPolicy(allow=("remember",))
        return Runner(
            self.store,
            lambda: self.client(retries, **config),
            CharCounter,
            ToolRegistry(policy=policy),
            lambda: next(clock),
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

        def make(*script: ScriptTurn, **options: Any) -> Server:
            store = open_store(f"sqlite://{tmp_path / f'{next(made)}.db'}")
            stack.callback(store.close)
            model = ScriptedModel(script, kept=[], **options)
            url = stack.enter_context(ScriptedServer(model)).base_url
            s = Server(store, model, url)
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
