"""The runner against an in-process model client that fails loudly (agentctl.testing): no
HTTP, no server, an in-memory store. A model call the runner should not make, or a reply it
never asks for, fails the test."""

from __future__ import annotations

from typing import Any

import pytest

from agentctl.domain.lifecycle import State
from agentctl.domain.session import Message, SessionInfo, TaskSpec, ToolCall
from agentctl.loop.context import Budget
from agentctl.loop.runner import Runner, Stop
from agentctl.store import Store, open_store
from agentctl.testing import Answer, CharCounter, ScriptedClient
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


# -- issue 15: the first request goes out before anything is counted or written -------------


class Logged(CharCounter):
    """Counts as CharCounter does, noting each count in `log`."""

    def __init__(self, log: list[str], bound_factor: int = 1) -> None:
        self.log = log
        self.factor = bound_factor

    def count(self, message: Message) -> int:
        self.log.append("count")
        return super().count(message)

    def bound(self, message: Message) -> int:
        return super().count(message) * self.factor

    def count_text(self, text: str) -> int:
        self.log.append("count")
        return super().count_text(text)

    def bound_text(self, text: str) -> int:
        return super().count_text(text) * self.factor


class LoggedClient(ScriptedClient):
    def __init__(self, replies: list[Message], log: list[str], store: Store) -> None:
        super().__init__(replies)
        self.log = log
        self.store = store

    def send(self, *args: Any, **kwargs: Any) -> Answer:
        exists = bool(self.store.match_sessions("s"))
        self.log.append("send (session stored)" if exists else "send (no session yet)")
        return super().send(*args, **kwargs)


def logged_runner(
    replies: list[Message], bound_factor: int = 1, window: int | None = None
) -> tuple[Runner, LoggedClient, list[str], Store]:
    log: list[str] = []
    store = open_store("memory:")
    client = LoggedClient(replies, log, store)
    clock = iter(f"2026-01-01T00:00:{n:02d}" for n in range(60))
    runner = Runner(
        store,
        lambda: client,
        lambda: Logged(log, bound_factor),
        ToolRegistry(policy=ApprovalPolicy()),
        lambda: next(clock),
        budget=Budget(window, "test") if window else None,
    )
    return runner, client, log, store


INFO = SessionInfo(id="s", spec=TaskSpec(goal="g"), model="m", created_at="t")
FINISH = reply("finish", '{"result": "done"}')


def test_a_new_session_sends_its_first_request_before_counting_or_writing_anything() -> None:
    runner, client, log, store = logged_runner([reply("submit_plan", '{"steps": ["a"]}')])
    runner.start(INFO, "system", early=True)
    assert log[0] == "send (no session yet)"
    assert "count" in log[1:]  # counted while the model thinks, before checkpoint 1 was written
    result = runner.run("s", answer=None, ask=None, max_turns=1)
    assert len(client.requests) == 1  # the early request's reply was read, not asked again
    assert [c.kind for c in store.history("s")][:2] == ["new_task", "model_reply"]
    assert result.session.messages[2].tool_calls[0].name == "submit_plan"
    assert all(m.tokens > 0 for m in result.session.messages)  # counts stored as before


def test_a_first_request_that_may_not_fit_is_counted_before_it_is_sent() -> None:
    # The bound (100x the count here) is over the window, the exact count is not.
    runner, client, log, _store = logged_runner([FINISH], bound_factor=100, window=4096)
    runner.start(INFO, "system", early=True)
    assert "send (no session yet)" not in log
    assert client.requests == []
    runner.run("s", answer=None, ask=None, max_turns=1)
    assert log.index("send (session stored)") > log.index("count")


def test_a_first_request_whose_reply_is_never_read_is_let_go() -> None:
    runner, _client, _log, _store = logged_runner([FINISH])
    runner.start(INFO, "system", early=True)
    assert runner._early is not None
    pending = runner._early[1]
    runner.close()
    assert isinstance(pending, Answer)
    assert pending.cancelled


# -- issue 30 item 5: after a read-only result, the request goes out before the commit -------


class HeadLogged(ScriptedClient):
    """Notes, at each request, the kind of the session's newest stored checkpoint."""

    def __init__(self, replies: list[Message], store: Store) -> None:
        super().__init__(replies)
        self.store = store
        self.heads: list[str] = []

    def send(self, *args: Any, **kwargs: Any) -> Answer:
        self.heads.append(str(self.store.history("s")[-1].kind))
        return super().send(*args, **kwargs)


def tools_runner(
    tmp_path: Any, replies: list[Message], stop_after: int | None = None
) -> tuple[Runner, HeadLogged, Store]:
    from agentctl.tools import work_tools

    (tmp_path / "notes.txt").write_text("a note\n")
    store = open_store("memory:")
    client = HeadLogged(replies, store)
    clock = iter(f"2026-01-01T00:00:{n:02d}" for n in range(60))
    runner = Runner(
        store,
        lambda: client,
        CharCounter,
        work_tools(tmp_path, ApprovalPolicy(yes=True)),
        lambda: next(clock),
    )
    runner.start(INFO, "system")
    return runner, client, store


PLAN = reply("submit_plan", '{"steps": ["read", "write"]}')


def test_a_read_only_result_is_committed_while_the_next_request_goes_out(tmp_path: Any) -> None:
    read = reply("read_file", '{"path": "notes.txt"}', "r1")
    write = reply("write_file", '{"path": "out.txt", "content": "x"}', "w1")
    runner, client, store = tools_runner(tmp_path, [PLAN, read, write, FINISH])
    result = runner.run("s", answer=None, ask=None, max_turns=10)
    assert result.stop is Stop.DONE
    client.assert_consumed()  # each reply asked for once: the early request was the one read
    # The request after read_file went out with the result not yet stored (it is written while
    # the model reads it); after write_file, a side effect, the result is stored first.
    assert client.heads == ["new_task", "plan_ready", "model_reply", "tool_result"]
    kinds = [c.kind for c in store.history("s")]
    assert kinds.count("tool_result") == 2
    assert client.requests[2][-1]["content"].endswith("a note\n")  # the result was sent


def test_a_request_sent_ahead_is_let_go_when_the_run_stops_before_it(tmp_path: Any) -> None:
    read = reply("read_file", '{"path": "notes.txt"}', "r1")
    runner, client, store = tools_runner(tmp_path, [PLAN, read, FINISH])
    sent: list[Answer] = []
    send = client.send

    def keep(*args: Any, **kwargs: Any) -> Answer:
        sent.append(send(*args, **kwargs))
        return sent[-1]

    client.send = keep  # type: ignore[method-assign]
    # Told to stop once the request after read_file went out: while its result is written.
    result = runner.run("s", answer=None, ask=None, max_turns=10, stop_when=lambda: len(sent) == 3)
    assert result.stop is Stop.DRAINED
    assert store.history("s")[-1].kind == "tool_result"  # the result is stored all the same
    runner.close()
    assert len(sent) == 3
    assert sent[-1].cancelled
    assert not sent[0].cancelled


# -- the request sent ahead of a read's commit, when its sending fails --------------------------


@pytest.mark.parametrize("error", [RuntimeError("the connection pool is gone"), OSError(24)])
def test_a_request_ahead_that_fails_to_go_out_is_made_again_after_the_result_is_stored(
    tmp_path: Any, error: Exception
) -> None:
    """Any error sending the request ahead, not only agentctl's own: the result is stored
    first and the request is made again after it, as it was before the look-ahead (the read
    result was lost, and the run died with the error)."""
    read = reply("read_file", '{"path": "notes.txt"}', "r1")
    runner, client, store = tools_runner(tmp_path, [PLAN, read, FINISH])
    send, failed = client.send, []

    def once(*args: Any, **kwargs: Any) -> Answer:
        if len(client.heads) == 2 and not failed:  # the request after read_file, ahead
            failed.append(store.history("s")[-1].kind)
            raise error
        return send(*args, **kwargs)

    client.send = once  # type: ignore[method-assign]
    result = runner.run("s", answer=None, ask=None, max_turns=10)
    assert failed == ["model_reply"]  # it failed ahead of the result's commit
    assert result.stop is Stop.DONE
    client.assert_consumed()
    assert [c.kind for c in store.history("s")].count("tool_result") == 1


@pytest.mark.parametrize("signal", [KeyboardInterrupt, SystemExit])
def test_ctrl_c_while_the_request_goes_out_ahead_keeps_the_read_result(
    tmp_path: Any, signal: type[BaseException]
) -> None:
    """Ctrl-C or SIGTERM (both KeyboardInterrupt in the CLI) while the request after a read
    goes out (a server slow to take it, a worker's pace): the result is stored, then the run
    stops as asked."""
    read = reply("read_file", '{"path": "notes.txt"}', "r1")
    runner, client, store = tools_runner(tmp_path, [PLAN, read, FINISH])
    send = client.send

    def interrupted(*args: Any, **kwargs: Any) -> Answer:
        if len(client.heads) == 2:
            raise signal
        return send(*args, **kwargs)

    client.send = interrupted  # type: ignore[method-assign]
    with pytest.raises(signal):
        runner.run("s", answer=None, ask=None, max_turns=10)
    runner.close()
    assert store.history("s")[-1].kind == "tool_result"
    assert store.load("s").messages[-1].content.endswith("a note\n")
