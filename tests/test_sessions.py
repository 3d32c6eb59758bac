"""Managing the pile of sessions on every backend: names, tags, filters, fork, rm, prune,
usage, the history graph, watch and --version."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agentctl.store import open_store
from agentctl.store.lease import Lease
from tests.conftest import SAMPLES, cli, run

TRIP = str(SAMPLES / "plan_trip.toml")
NOTES = str(SAMPLES / "release_notes.toml")


@pytest.fixture(params=["sqlite", "json", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    url = {
        "sqlite": f"sqlite://{tmp_path / 's.db'}",
        "json": f"json://{tmp_path / 'j'}",
    }.get(request.param) or str(request.getfixturevalue("pg_url"))
    return {"AGENTCTL_STORE": url}


def ids(env: dict[str, str], *args: str) -> list[str]:
    return [s["id"] for s in run("list", "--json", *args, env=env).json()]


def started(env: dict[str, str], task: str = TRIP) -> str:
    assert run("run", task, "--no-input", env=env).code in (0, 3)
    return ids(env)[0]


def test_names_and_tags_work_wherever_an_id_does(env: dict[str, str]) -> None:
    trip, notes = started(env), started(env, NOTES)
    assert run("rename", trip, "lisbon", env=env).code == 0
    assert run("tag", "lisbon", "travel", "q4", env=env).code == 0
    assert run("show", "lisbon", "--json", env=env).json()["id"] == trip
    listed = {s["id"]: s for s in run("list", "--json", env=env).json()}
    assert (listed[trip]["name"], listed[trip]["tags"]) == ("lisbon", ["travel", "q4"])
    assert ids(env, "--tag", "travel") == [trip]
    assert run("tag", "lisbon", "q4", "--remove", env=env).code == 0
    assert ids(env, "--tag", "q4") == []
    taken = run("rename", notes, "lisbon", env=env)  # a name is one session's
    assert taken.code == 2
    assert f"taken by session {trip}" in taken.stderr
    assert run("rename", trip, "lisbon", env=env).code == 0  # its own name again is fine
    store = open_store(env["AGENTCTL_STORE"])  # a name two sessions share (an older agentctl)...
    store.set_labels(notes, "lisbon", ())
    store.close()
    shared = run("show", "lisbon", env=env)
    assert shared.code == 2
    assert trip in shared.stderr
    assert notes in shared.stderr
    assert "(" in run("list", env=env).stdout  # ...is listed with its id
    assert run("rename", trip, trip[:3], env=env).code == 2  # an id prefix is not a name


def test_run_takes_a_name_and_tags_and_refuses_a_taken_name(env: dict[str, str]) -> None:
    named = run(
        "run", TRIP, "--no-input", "--name", "lisbon", "--tag", "travel", "--tag", "q4", env=env
    )
    assert named.code == 3, named.stderr
    [trip] = run("list", "--json", env=env).json()
    assert (trip["name"], trip["tags"]) == ("lisbon", ["travel", "q4"])
    assert run("show", "lisbon", "--json", env=env).json()["id"] == trip["id"]
    again = run("run", NOTES, "--no-input", "--name", "lisbon", env=env)
    assert again.code == 2
    assert f"taken by session {trip['id']}" in again.stderr
    assert ids(env) == [trip["id"]]  # refused before anything was written
    assert run("fork", "lisbon", "--name", "lisbon", env=env).code == 2
    assert run("run", NOTES, "--no-input", "--tag", "two words", env=env).code == 2


def test_list_filters(env: dict[str, str], tmp_path: Path) -> None:
    trip = started(env)
    notes = started(env, NOTES)
    assert ids(env, "--state", "waiting_feedback") == [trip]
    assert set(ids(env, "--since", "1h")) == {trip, notes}
    assert ids(env, "--until", "2000-01-01") == []
    assert ids(env, "--limit", "1") == [notes]
    assert len(ids(env, "--all")) == 2
    assert set(ids(env, "--workspace", os.getcwd())) == {trip, notes}
    assert ids(env, "--workspace", str(tmp_path)) == []
    assert run("list", "--since", "yesterday-ish", env=env).code == 2


def test_a_fork_starts_a_new_session_from_any_checkpoint(env: dict[str, str]) -> None:
    trip = started(env)
    forked = run("fork", trip, "--at", "8", "--name", "trip-b", env=env)
    assert forked.code == 0, forked.stderr
    fork_id = next(s for s in ids(env) if s != trip)
    assert len(run("history", fork_id, "--json", env=env).json()) == 8
    shown = run("show", fork_id, "--json", env=env).json()
    assert shown["forked_from"] == f"{trip}:8"
    assert fork_id in run("show", trip, env=env).stdout  # the parent lists its forks
    # The fork is a session of its own: it goes on to done while the parent waits.
    assert run("resume", "trip-b", "--input", "next Monday", env=env).code == 0
    assert run("show", trip, "--json", env=env).json()["state"] == "waiting_feedback"
    assert run("fork", trip, "--at", "99", env=env).code == 2


def test_rm_deletes_only_what_it_is_given_and_never_a_running_session(
    env: dict[str, str],
) -> None:
    trip, notes = started(env), started(env, NOTES)
    assert run("rm", trip, env=env).code == 2  # no terminal to ask on: --yes is needed
    assert len(ids(env)) == 2
    store = open_store(env["AGENTCTL_STORE"])
    try:
        store.acquire_lease(notes, Lease.mine("someone-else-running-it"))
        busy = run("rm", notes, "--yes", env=env)
        assert busy.code == 4
        assert "not deleted" in busy.stderr
    finally:
        store.close()
    assert run("rm", trip, "--yes", env=env).code == 0
    assert ids(env) == [notes]
    assert run("verify", env=env).code == 0


def test_prune_lists_with_sizes_then_deletes_and_gives_the_space_back(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    env = {"AGENTCTL_STORE": f"sqlite://{db}"}
    for _ in range(4):
        started(env, NOTES)
    keep = ids(env)[0]
    size_before = db.stat().st_size
    dry = run("prune", "--older-than", "0s", "--keep-last", "1", "--dry-run", env=env)
    assert dry.code == 0
    assert "would delete 3 sessions" in dry.stdout
    assert "KB" in dry.stdout
    assert len(ids(env)) == 4
    done = run(
        "prune", "--older-than", "0s", "--keep-last", "1", "--state", "done", "--yes", env=env
    )
    assert done.code == 0, done.stderr
    assert ids(env) == [keep]
    assert run("verify", env=env).code == 0
    assert db.stat().st_size < size_before  # VACUUM gave the pages back
    assert run("prune", "--older-than", "30d", "--dry-run", env=env).stdout == ""


def test_usage_by_model_session_and_day(env: dict[str, str]) -> None:
    trip = started(env)
    by_model = run("usage", "--json", env=env).json()
    assert by_model[0]["model"] == "scripted"
    assert by_model[0]["calls"] >= 3
    assert by_model[0]["cost_usd"] == 0.0
    assert run("usage", trip, "--by", "session", "--json", env=env).json()[0]["session"] == trip
    assert len(run("usage", "--by", "day", "--json", env=env).json()) == 1
    assert run("usage", "--since", "2099-01-01", "--json", env=env).json() == []
    assert run("usage", "--by", "week", env=env).code == 2


def test_the_history_graph_shows_the_abandoned_branch(env: dict[str, str]) -> None:
    trip = started(env)
    assert run("resume", trip, "--input", "next Monday", env=env).code == 0
    assert run("rollback", trip, "--steps", "3", env=env).code == 0
    graph = run("history", trip, "--graph", env=env).stdout
    assert "| *" in graph  # the abandoned branch beside the trunk
    assert "(from #8)" in graph
    assert "← head" in graph


def test_version() -> None:
    shown = run("--version")
    assert shown.code == 0
    assert shown.stdout.startswith("agentctl ")


def test_watch_follows_a_session_running_elsewhere_until_it_waits(
    env: dict[str, str],
) -> None:
    env = {**env, "AGENTCTL_SCRIPTED_DELAY": "0.3"}
    runner = subprocess.Popen(
        [sys.executable, "-m", "agentctl", "run", TRIP, "--no-input"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        listed: list[Any] = []
        while not listed and time.monotonic() < deadline:
            found = cli("list", "--json", env=env)
            listed = found.json() if found.code == 0 else []
            time.sleep(0.1)
        assert listed, "the run never created its session"
        watched = cli("watch", listed[0]["id"], env=env)
    finally:
        runner.wait(timeout=60)
    assert watched.code == 3  # as run would: waiting for input
    assert "What dates do you want to travel?" in watched.stderr


def test_prune_on_every_backend(env: dict[str, str]) -> None:
    for _ in range(3):
        started(env, NOTES)
    newest = ids(env)[0]
    assert run("prune", "--older-than", "0s", "--keep-last", "1", "--yes", env=env).code == 0
    assert ids(env) == [newest]
    assert run("verify", env=env).code == 0


def test_search_finds_text_in_every_sessions_messages(env: dict[str, str]) -> None:
    trip, notes = started(env), started(env, NOTES)
    found = run("search", "always fly Delta", "--json", env=env).json()
    assert {h["session"] for h in found} == {trip}
    assert found[0]["role"] in ("user", "assistant")
    assert "always fly Delta" in found[0]["snippet"]
    assert found[0]["checkpoint"] >= 1
    assert run("search", "release notes", "--json", env=env).json()[0]["session"] == notes
    assert run("search", 'quote " and * ( syntax', "--json", env=env).json() == []
    assert run("search", "  ", env=env).code == 2
    run("rm", trip, "--yes", env=env)
    assert run("search", "always fly Delta", "--json", env=env).json() == []


def test_prices_from_the_settings_file(tmp_path: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text("[prices]\nscripted = [1000000.0, 2000000.0]\n")
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}", "AGENTCTL_CONFIG": str(config)}
    started(env)
    row = run("usage", "--json", env=env).json()[0]
    assert row["cost_usd"] == row["prompt_tokens"] + 2 * row["completion_tokens"]
    assert run("config", "set", "timeout", "30", env=env).code == 0
    assert "[prices]" in config.read_text()  # kept when another key is set
    config.write_text('[prices]\nscripted = "cheap"\n')
    assert run("usage", env=env).code == 2


def test_what_prune_lists_from_the_store_is_shown_as_text(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "s.db"
    env = {"AGENTCTL_STORE": f"sqlite://{db}"}
    started(env, NOTES)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE sessions SET state = '[bold]odd', name = '[red]n'")
    conn.commit()
    conn.close()
    listed = run("prune", "--older-than", "0s", "--dry-run", env=env)
    assert "[bold]odd" in listed.stdout
    assert "[red]n" in listed.stdout


def test_search_and_show_print_what_a_damaged_store_holds_as_text(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "s.db"
    env = {"AGENTCTL_STORE": f"sqlite://{db}"}
    sid = started(env)
    conn = sqlite3.connect(db)
    # a fork mark without its checkpoint number, naming this very session
    conn.execute("UPDATE sessions SET info = json_set(info, '$.forked_from', ?)", (sid,))
    conn.commit()
    shown = run("show", sid, env=env)
    assert shown.code == 0, shown.stderr
    conn.execute("UPDATE messages SET body = json_set(body, '$.role', '[red]role')")
    conn.commit()
    conn.close()
    found = run("search", "always fly Delta", env=env)
    assert found.code == 0
    assert "[red]role" in found.stdout
