"""Bad input is one line and exit 2, and breaks nothing that comes after it (in process: these
are contracts of the command line, not of processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SAMPLES, Result, run

TRIP = str(SAMPLES / "plan_trip.toml")


def usage_error(result: Result, needle: str) -> None:
    assert result.code == 2, (result.stdout, result.stderr)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert needle in result.stderr


@pytest.fixture
def session() -> str:
    assert run("run", TRIP, "--no-input").code == 3
    return str(run("list", "--json").json()[0]["id"])


def test_checkpoint_zero_is_not_the_head(session: str) -> None:
    assert run("show", session, "--at", "0").code == 2


def test_an_empty_session_id_names_no_session(session: str) -> None:
    usage_error(run("resume", "", "--input", "x"), "no session matches ''")


def test_an_unknown_status_is_named(session: str) -> None:
    usage_error(
        run("list", "--status", "bogus"), "--state (--status) must be one of planning, executing"
    )


def test_a_mistyped_task_path_is_not_taken_as_a_goal(tmp_path: Path) -> None:
    usage_error(run("run", "sample_tasks/plan_trip.tml"), "does not exist")
    usage_error(run("run", "plan_trip.tml"), "does not exist")
    usage_error(run("run", str(tmp_path)), "is a folder, not a task file")
    assert run("list", "--json").json() == []  # nothing started


def test_an_empty_goal_in_a_task_file_is_refused(tmp_path: Path) -> None:
    task = tmp_path / "t.toml"
    task.write_text('goal = "  "\n')
    usage_error(run("run", str(task)), "goal")


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("store", "nonsense", "store must be a URL such as sqlite:///FILE"),
        ("base_url", "not a url", "base_url must be an http(s) URL"),
        ("context_window", "100", "context_window must be a whole number of at least 512"),
        ("timeout", "nan", "timeout must be a number of seconds above 0"),
    ],
)
def test_bad_settings_are_refused_before_they_are_written(
    key: str, value: str, needle: str
) -> None:
    usage_error(run("config", "set", key, value), needle)
    assert run("list").code == 0  # and nothing later breaks


def test_bad_numbers_from_the_environment_are_named() -> None:
    usage_error(run("list", env={"AGENTCTL_CONTEXT_WINDOW": "100"}), "at least 512")
    usage_error(
        run("run", TRIP, "--no-input", env={"AGENTCTL_SCRIPTED_DELAY": "nan"}),
        "AGENTCTL_SCRIPTED_DELAY must be a number of seconds",
    )


def test_a_negative_scripted_delay_is_a_task_file_error(tmp_path: Path) -> None:
    task = tmp_path / "t.toml"
    task.write_text('goal = "g"\n[[script]]\ndelay = -1\ncontent = "hi"\n')
    usage_error(run("run", str(task)), "script[0].delay")


def test_a_store_url_with_no_path_is_refused() -> None:
    usage_error(run("list", "--store", "json:"), "names no file or folder")
