"""The settings file and model selection: precedence, privacy, masking and clear errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agentctl.config import Settings
from agentctl.domain.session import ScriptTurn, TaskSpec
from agentctl.errors import ModelError, UsageError
from agentctl.usecases import wiring
from tests.conftest import SAMPLES, run

SECRET = "sk-proj-CONFIG-FILE-TEST-KEY-98765"


def test_config_set_writes_a_private_file_and_show_masks_the_key(agentctl_home: Path) -> None:
    assert run("config", "set", "model", "llama3.2").code == 0
    assert run("config", "set", "base_url", "http://localhost:11434/v1").code == 0
    set_key = run("config", "set", "api_key", SECRET)
    assert set_key.code == 0
    assert SECRET not in set_key.stdout + set_key.stderr
    path = agentctl_home / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    shown = run("config", "show")
    assert SECRET not in shown.stdout
    assert "****8765" in shown.stdout
    settings = run("config", "show", "--json").json()["settings"]
    assert settings["model"] == {"value": "llama3.2", "source": "config file"}
    assert settings["api_key"] == {"value": "****8765", "source": "config file"}
    # Issue 25: a default is shown as the value in effect, not as "not set".
    assert settings["timeout"] == {"value": "120", "source": "default"}
    assert settings["retries"] == {"value": "3", "source": "default"}
    assert settings["context_strategy"] == {"value": "summarize", "source": "default"}
    assert settings["preview_lines"] == {"value": "4", "source": "default"}
    assert settings["store"]["source"] == "default"
    assert "timeout              = 120  (default)" in shown.stdout
    assert run("config", "unset", "model").code == 0
    assert run("config", "show", "--json").json()["settings"]["model"]["value"] is None


def test_agentctl_variables_beat_the_file_and_the_file_beats_openai_variables() -> None:
    run("config", "set", "model", "from-file")
    run("config", "set", "base_url", "http://file.example/v1")
    env = {
        "AGENTCTL_MODEL": "from-env",
        "OPENAI_BASE_URL": "http://env.example/v1",
        "OPENAI_API_KEY": "sk-only-in-the-environment-0000",
    }
    settings = run("config", "show", "--json", env=env).json()["settings"]
    assert settings["model"] == {"value": "from-env", "source": "env AGENTCTL_MODEL"}
    assert settings["base_url"] == {"value": "http://file.example/v1", "source": "config file"}
    assert settings["api_key"] == {"value": "****0000", "source": "env OPENAI_API_KEY"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["set", "colour", "red"], "unknown setting 'colour'"),
        (["set", "context_window", "many"], "context_window must be a whole number"),
        (["set", "timeout", "0"], "timeout must be a number of seconds above 0"),
        (["set", "context_strategy", "forget"], "must be one of summarize, drop"),
        (["unset", "model"], "model is not set in"),
    ],
)
def test_bad_settings_are_one_line_exit_2(args: list[str], needle: str) -> None:
    result = run("config", *args)
    assert result.code == 2
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_broken_settings_file_names_itself(agentctl_home: Path) -> None:
    agentctl_home.mkdir(parents=True)
    (agentctl_home / "config.toml").write_text("model = \n")
    result = run("list")
    assert result.code == 2
    assert f"settings file {agentctl_home / 'config.toml'}" in result.stderr
    (agentctl_home / "config.toml").write_text('modle = "x"\n')
    assert "unknown key 'modle'" in run("list").stderr
    # Nested deeper than the parser goes: RecursionError, not a TOMLDecodeError.
    (agentctl_home / "config.toml").write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    deep = run("list")
    assert deep.code == 2
    assert "nested too deep" in deep.stderr


def test_a_key_in_the_settings_file_never_reaches_the_store(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere" / "config.toml"
    env = {"AGENTCTL_CONFIG": str(config)}
    run("config", "set", "api_key", SECRET, env=env)
    run("config", "set", "base_url", "http://127.0.0.1:9/v1", env=env)  # nothing listens
    assert run("config", "set", "retries", "0", env=env).code == 0  # give up at once
    assert run("config", "set", "retries", "-1", env=env).code == 2
    result = run("run", "a goal for a real model", "--model", "gpt-4o-mini", env=env)
    assert result.code == 5
    assert "cannot reach the model server at http://127.0.0.1:9/v1" in result.stderr
    [session] = run("list", "--json", env=env).json()
    outputs = [result.stdout, result.stderr]
    for command in (["show", "--json"], ["config", "show"]):
        shown = run(
            *command[:1],
            *([session["id"]] if command[0] != "config" else []),
            *command[1:],
            env=env,
        )
        outputs += [shown.stdout, shown.stderr]
    assert all(SECRET not in text for text in outputs)
    store_files = [p for p in (tmp_path / "home").rglob("*") if p.is_file()]
    assert store_files
    assert all(SECRET.encode() not in p.read_bytes() for p in store_files)


# -- which model runs -------------------------------------------------------------------------

SCRIPT = (ScriptTurn(content="hi"),)


def settings(**env: str) -> Settings:
    flag = env.pop("FLAG", None)  # stands for --model
    return Settings.load({"AGENTCTL_HOME": "/nonexistent", **env}, model=flag)


@pytest.mark.parametrize(
    ("env", "spec_model", "session_model", "chosen"),
    [
        ({"FLAG": "flag-model", "AGENTCTL_MODEL": "env"}, "task", "session", "flag-model"),
        ({"AGENTCTL_MODEL": "env", "OPENAI_API_KEY": "k"}, "task", "session", "session"),
        ({"AGENTCTL_MODEL": "env", "OPENAI_API_KEY": "k"}, "task", None, "task"),
        ({"AGENTCTL_MODEL": "env", "OPENAI_BASE_URL": "http://x/v1"}, None, None, "env"),
        ({}, "task", None, "scripted"),  # a task's model needs a server; its script runs
        ({}, None, None, "scripted"),
    ],
)
def test_the_model_is_the_flag_then_the_session_then_the_task_then_the_default(
    env: dict[str, str], spec_model: str | None, session_model: str | None, chosen: str
) -> None:
    spec = TaskSpec(goal="g", model=spec_model, script=SCRIPT)
    assert wiring.choose_model(settings(**env), spec, session_model) == chosen


def test_no_model_and_no_script_is_a_model_error_naming_every_way_to_configure() -> None:
    with pytest.raises(ModelError, match="agentctl config set model NAME"):
        wiring.choose_model(settings(), TaskSpec(goal="g"), None)
    with pytest.raises(UsageError, match="needs a task file with a"):
        wiring.choose_model(settings(FLAG="scripted"), TaskSpec(goal="g"), None)


def test_a_sample_runs_on_its_script_when_the_file_names_no_server() -> None:
    run("config", "set", "context_window", "16000")
    result = run("run", str(SAMPLES / "release_notes.toml"))
    assert result.code == 0, result.stderr
    [session] = run("list", "--json").json()
    context = run("show", session["id"], "--json").json()["context"]
    assert (context["window"], context["window_source"]) == (16000, "config file")


def test_a_slow_model_times_out_with_exit_5_and_resumes_once_it_answers(tmp_path: Path) -> None:
    task = tmp_path / "slow.toml"
    task.write_text(
        """
goal = "wait"
[[script]]
delay = 1.0
[[script.tool_calls]]
name = "submit_plan"
arguments = { steps = ["wait"] }
[[script]]
[[script.tool_calls]]
name = "complete_step"
arguments = { summary = "ok" }
[[script.tool_calls]]
name = "finish"
arguments = { result = "waited" }
"""
    )
    run("config", "set", "timeout", "0.3")
    slow = run("run", str(task))
    assert slow.code == 5
    assert "did not answer within 0.3 s" in slow.stderr
    [session] = run("list", "--json").json()
    shown = run("show", session["id"], "--json").json()
    assert shown["task"]["last_error"].endswith("did not answer within 0.3 s")
    run("config", "unset", "timeout")
    done = run("resume", session["id"])
    assert done.code == 0, done.stderr
    assert done.stdout == "waited\n"
