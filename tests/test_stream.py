"""The JSON event stream (issue 25 part 4), consumed as a script would: a real `agentctl`
process read line by line as it runs, driven to an approval and a question, answered with
`resume --input`, on every store backend."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SAMPLES, run

pytestmark = pytest.mark.process

FIX = str(SAMPLES / "fix_failing_test.toml")
TRIP = str(SAMPLES / "plan_trip.toml")
RESULT_KEYS = {
    "session_id",
    "state",
    "outcome",
    "is_error",
    "exit_code",
    "duration_ms",
    "num_turns",
    "usage",
    "total_cost_usd",
    "result",
}


def stream(*args: str, store: str, delay: str = "0") -> tuple[int, list[dict[str, Any]], bool]:
    """Run agentctl with --json as a script would, reading each line as it comes. Returns the
    exit code, the events, and whether the first event arrived while the run was still going
    (it is flushed at once, not at the end)."""
    env = {
        **os.environ,
        "AGENTCTL_STORE": store,
        "AGENTCTL_SCRIPTED_DELAY": delay,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentctl", *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert proc.stdout is not None
    events: list[dict[str, Any]] = []
    early = False
    for line in proc.stdout:
        if not events:
            early = proc.poll() is None
        events.append(json.loads(line))  # every line is one JSON object
    proc.wait(timeout=60)
    assert proc.stderr is not None
    proc.stderr.close()
    return proc.returncode, events, early


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def check_shape(events: list[dict[str, Any]]) -> None:
    assert all(e["v"] == 1 for e in events)
    assert events[0]["type"] == "session.started"
    assert events[-1]["type"] == "result"
    assert types(events).count("result") == 1
    assert set(events[-1]) >= RESULT_KEYS
    # Every model turn reports its usage before the checkpoint of its reply.
    kinds = [e.get("kind") if e["type"] == "checkpoint" else e["type"] for e in events]
    for n, kind in enumerate(kinds):
        if kind == "model_reply":
            assert kinds[n - 1] == "usage", kinds[n - 2 : n + 1]
    numbers = [e["number"] for e in events if e["type"] == "checkpoint"]
    assert numbers == sorted(numbers)


def test_a_script_follows_a_run_to_an_approval_answers_it_and_follows_it_to_the_end(
    store_url: str, tmp_path: Path
) -> None:
    work = tmp_path / "invoice"
    shutil.copytree(SAMPLES / "invoice", work)
    code, events, early = stream(
        "run", FIX, "--workspace", str(work), "--no-input", store=store_url, delay="0.2"
    )
    assert code == 3
    assert early  # flushed as it happened
    check_shape(events)
    started = events[0]
    sid = started["session_id"]
    assert (started["model"], started["workspace"]) == ("scripted", str(work))
    assert started["store"].split(":")[0] == store_url.split(":")[0]
    # The allowed command ran: started with its subject, finished with its output.
    shell = next(e for e in events if e["type"] == "tool.started")
    assert (shell["tool"], shell["subject"]) == ("run_shell", "$ python3 -m unittest")
    assert shell["arguments"] == {"command": "python3 -m unittest"}
    done = next(e for e in events if e["type"] == "tool.finished")
    assert (done["call_id"], done["status"]) == (shell["call_id"], "error")
    assert "FAILED (failures=2)" in done["output"]
    # The read, then the approval the edit waits for, then the result.
    order = types(events)
    approval = next(e for e in events if e["type"] == "approval")
    assert approval["tool"] == "edit_file"
    assert "percent // 100" in approval["question"]
    assert order.index("approval") == len(order) - 2
    result = events[-1]
    assert (result["state"], result["exit_code"], result["is_error"]) == (
        "waiting_feedback",
        3,
        False,
    )
    assert result["num_turns"] == 4
    assert result["usage"]["input_tokens"] > 0
    messages = [e["text"] for e in events if e["type"] == "message"]
    assert "Two tests fail, both through apply_discount" in messages[0]

    code, events, _ = stream("resume", sid, "--input", "y", store=store_url)
    assert code == 0
    check_shape(events)
    assert events[0]["resumed_at"] == approval["checkpoint"]
    kinds = [e["kind"] for e in events if e["type"] == "checkpoint"]
    assert kinds[0] == "input_received"
    edit = next(e for e in events if e["type"] == "tool.started")
    assert edit["tool"] == "edit_file"
    assert edit["subject"] == "invoice.py"
    assert "+    return total_cents - total_cents * percent // 100" in edit["diff"]
    finished = [e for e in events if e["type"] == "tool.finished"]
    assert finished[0]["files_changed"] == 1
    assert finished[1]["status"] == "ok"  # the tests pass now
    result = events[-1]
    assert (result["state"], result["outcome"], result["exit_code"]) == ("done", "succeeded", 0)
    assert result["result"].startswith("Fixed apply_discount")
    assert result["files_changed"] == [{"path": "invoice.py", "added": 1, "removed": 1}]
    assert result["total_cost_usd"] == 0.0  # the scripted model is priced at nothing


def test_a_question_is_an_event_and_the_answer_continues_the_stream() -> None:
    done = run("run", TRIP, "--json", "--no-input")
    assert done.code == 3
    events = done.events()
    check_shape(events)
    question = next(e for e in events if e["type"] == "question")
    assert question["question"] == "What dates do you want to travel?"
    assert events[-1]["question"] == question["question"]
    sid = events[0]["session_id"]
    answered = run("resume", sid, "--input", "next Monday", "--json")
    assert answered.code == 0
    later = answered.events()
    check_shape(later)
    assert later[-1]["outcome"] == "succeeded"
    assert later[-1]["result"].startswith("Draft booking")


def test_an_error_ends_the_stream_with_a_result_that_is_an_error(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "AGENTCTL_RETRIES": "0"}
    failed = run("run", "say hi", "--model", "m", "--workspace", str(work), "--json", env=env)
    assert failed.code == 5
    events = failed.events()
    assert events[0]["type"] == "session.started"
    assert events[-1]["type"] == "result"
    assert (events[-1]["is_error"], events[-1]["exit_code"]) == (True, 5)
    assert events[-1]["session_id"] == events[0]["session_id"]


def test_watch_streams_a_run_in_another_process(tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 's.db'}"
    env = {**os.environ, "AGENTCTL_STORE": store, "AGENTCTL_SCRIPTED_DELAY": "0.6"}
    runner = subprocess.Popen(
        [sys.executable, "-m", "agentctl", "run", TRIP, "--no-input"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        listed: list[dict[str, Any]] = []
        for _ in range(400):  # bounded poll until the session exists
            found = run("list", "--json", env={"AGENTCTL_STORE": store})
            listed = found.json() if found.code == 0 else []  # 2: no store made yet
            if listed:
                break
            time.sleep(0.02)
        sid = listed[0]["id"]
        code, events, _ = stream("watch", sid, store=store)
    finally:
        runner.wait(timeout=60)
    assert code == 3
    assert events[-1]["type"] == "result"
    assert any(e["type"] == "question" for e in events)
