"""Text UTF-8 cannot encode — a lone surrogate: what undecodable bytes in a file name or on the
command line become in Python, or what a `\\ud800` escape in a server's JSON decodes to — must
not wedge a session. No store and no server can take it, so a session that held it could never
move on: every resume would meet the same refusal. It is replaced by U+FFFD where it enters."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from agentctl.domain.session import ScriptToolCall, ScriptTurn, SessionInfo, TaskSpec, valid_text
from agentctl.domain.tasks import goal_task
from agentctl.llm.openai_chat import ModelConfig, OpenAIModelClient
from agentctl.llm.scripted import ScriptedModel, ScriptedServer
from agentctl.loop.runner import Runner, Stop
from agentctl.store import open_store
from agentctl.testing import CharCounter
from agentctl.tools import work_tools
from agentctl.tools.approval import ApprovalPolicy

BAD = "\ud800"


def run(tmp_path: Path, *script: ScriptTurn, answer: str | None = None) -> tuple[Stop, Any]:
    store = open_store(f"sqlite://{tmp_path}/s.db")
    model = ScriptedModel(script)
    with ScriptedServer(model) as server:
        config = ModelConfig(model="m", base_url=server.base_url, api_key=None, max_retries=0)
        clock = iter(f"2026-01-01T00:00:{n:02d}" for n in range(60))
        runner = Runner(
            store,
            lambda: OpenAIModelClient(config),
            CharCounter,
            work_tools(tmp_path / "ws", ApprovalPolicy(yes=True)),
            lambda: next(clock),
        )
        info = SessionInfo(id="s1", spec=TaskSpec(goal="g"), model="m", created_at="t")
        runner.start(info, "system")
        stop = runner.run("s1", answer=None, ask=None, max_turns=10).stop
        if answer is not None:  # a question was asked: answered by a later resume
            stop = runner.run("s1", answer=answer, ask=None, max_turns=10).stop
    return stop, store.load("s1")


def call(name: str, **arguments: Any) -> ScriptToolCall:
    return ScriptToolCall(name=name, arguments=arguments)


def test_a_file_name_that_is_not_utf8_is_listed_not_a_wedge(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    with open(os.path.join(os.fsencode(tmp_path / "ws"), b"bad\xff.txt"), "w") as f:
        f.write("x")
    stop, session = run(
        tmp_path,
        ScriptTurn(tool_calls=(call("submit_plan", steps=["look"]),)),
        ScriptTurn(tool_calls=(call("list_files"),)),
        ScriptTurn(tool_calls=(call("finish", result="seen"),)),
    )
    assert stop is Stop.DONE
    listing = next(
        m.content for m in session.messages if m.role == "tool" and "bad" in (m.content or "")
    )
    assert "bad\ufffd.txt" in listing


def test_a_reply_and_arguments_with_lone_surrogates_are_kept_as_replacement_characters(
    tmp_path: Path,
) -> None:
    stop, session = run(
        tmp_path,
        # Escaped in the server's JSON: the SDK decodes them into lone surrogates.
        ScriptTurn(content=f"thinking {BAD}", tool_calls=(call("submit_plan", steps=[f"a{BAD}"]),)),
        ScriptTurn(tool_calls=(call("finish", result=f"done {BAD}"),)),
    )
    assert stop is Stop.DONE
    assert session.task.plan == ("a\ufffd",)
    assert session.task.result == "done \ufffd"
    assert any(m.content == "thinking \ufffd" for m in session.messages)


def test_a_goal_from_undecodable_command_line_bytes_is_replaced_not_an_internal_error() -> None:
    assert goal_task("hi \udcff there").goal == "hi \ufffd there"


@pytest.mark.parametrize(
    ("text", "clean"),
    [("plain", "plain"), ("é🙂", "é🙂"), (f"a{BAD}b\udfff", "a\ufffdb\ufffd"), ("", "")],
)
def test_valid_text_replaces_only_lone_surrogates(text: str, clean: str) -> None:
    assert valid_text(text) == clean
    clean.encode("utf-8")


def test_an_answer_from_a_terminal_that_is_not_utf8_is_kept(tmp_path: Path) -> None:
    stop, session = run(
        tmp_path,
        ScriptTurn(tool_calls=(call("submit_plan", steps=["ask"]),)),
        ScriptTurn(tool_calls=(call("ask_user", question="When?"),)),
        ScriptTurn(tool_calls=(call("finish", result="ok"),)),
        answer="monday \udcff",
    )
    assert stop is Stop.DONE
    assert any(m.content == "monday \ufffd" for m in session.messages)
