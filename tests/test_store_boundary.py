"""Issue 29, the store side of the boundary: what the second round of attacks and a new user
found in the stores, export, import and move, and the commands around them. Each test failed on
the code before its fix; where a store is involved, it runs on every backend."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agentctl.store import open_store
from agentctl.store.sqlite import SQLiteStore
from agentctl.testing.store_spec import draft, info
from tests.conftest import SAMPLES, run

TRIP = str(SAMPLES / "plan_trip.toml")


@pytest.fixture(params=["memory", "sqlite", "json", "postgres"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL of every backend (memory: one process, so the CLI runs in process)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return {
        "memory": "memory:",
        "sqlite": f"sqlite://{tmp_path / 's' / 'agentctl.db'}",
        "json": f"json://{tmp_path / 'j'}",
    }[request.param]


# -- search -----------------------------------------------------------------------------------


@pytest.mark.parametrize("store_kind", ["sqlite", "json", "postgres"], indirect=True)
def test_search_prints_a_message_holding_the_snippet_marker(store_kind: str) -> None:
    """`search` crashed (rich markup error) on a message holding U+E001, on every backend."""
    store = open_store(store_kind)
    store.create_session(info("mark01"), draft(None, 1, "see \ue001 the needle \ue000 here"))
    store.close()
    env = {"AGENTCTL_STORE": store_kind}
    shown = run("search", "needle", env=env)
    assert shown.code == 0, shown.stderr
    assert "needle" in shown.stdout
    found = run("search", "needle", "--json", env=env).json()
    assert [h["session"] for h in found] == ["mark01"]


def test_an_existing_sqlite_search_index_is_rebuilt_for_substrings(tmp_path: Path) -> None:
    """A store whose index an earlier agentctl built (whole words) is migrated: the index of
    trigrams is made from its messages, and its next search matches parts of words, as a new
    store's does."""
    path = tmp_path / "agentctl.db"
    store = SQLiteStore(path)
    store.create_session(info("old001"), draft(None, 1, "always fly Delta"))
    store.close()
    db = sqlite3.connect(path)  # as schema 5 left it: the index of whole words, built
    db.executescript(  # and none of what migrations 7 to 9 add
        "DROP TABLE message_text; DROP INDEX messages_seq; ALTER TABLE messages DROP COLUMN seq;"
        " DROP INDEX sessions_forks; DROP INDEX sessions_recent;"
        " ALTER TABLE sessions DROP COLUMN forked_from;"
        " CREATE INDEX sessions_updated ON sessions (updated_at);"
        " ALTER TABLE sessions DROP COLUMN model; ALTER TABLE sessions DROP COLUMN usage;"
    )
    db.execute(
        "CREATE VIRTUAL TABLE messages_fts USING fts5("
        "content, session_id UNINDEXED, message_id UNINDEXED)"
    )
    db.execute(
        "INSERT INTO messages_fts (content, session_id, message_id)"
        " SELECT json_extract(body, '$.content'), session_id, id FROM messages"
    )
    db.execute("PRAGMA user_version = 5")
    db.commit()
    db.close()
    store = SQLiteStore(path)
    assert [h.session_id for h in store.search("delt", 10)] == ["old001"]
    assert [h.session_id for h in store.search("always fly", 10)] == ["old001"]
    store.close()
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "messages_fts" not in tables  # replaced by the index every append keeps
    assert "message_text" in tables


# -- settings and JSON ------------------------------------------------------------------------


@pytest.mark.parametrize("price", ["inf", "nan", "-inf", "1e400", "true"])
def test_a_price_that_is_no_number_is_refused_in_one_line(tmp_path: Path, price: str) -> None:
    """`inf` printed `$inf`, and `usage --json` emitted `Infinity`, which is not JSON."""
    config = tmp_path / "settings.toml"
    config.write_text(f"[prices]\nscripted = [{price}, 1.0]\n")
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}", "AGENTCTL_CONFIG": str(config)}
    refused = run("usage", "--json", env=env)
    assert refused.code == 2, refused.stdout
    assert refused.stderr.startswith("error: settings file")
    assert "prices.scripted" in refused.stderr
    assert refused.stdout == ""


def test_json_output_is_strict_json(capsys: pytest.CaptureFixture[str]) -> None:
    """Whatever reaches a --json document, a number that is not finite is null: `Infinity`
    and `NaN` are not JSON (jq and every strict parser refuse them)."""
    import json

    from agentctl.terminal import json_forms

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in --json output")

    json_forms.print_json({"cost": float("inf"), "rows": [float("nan"), 1.5, {"x": -float("inf")}]})
    printed = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert printed == {"cost": None, "rows": [None, 1.5, {"x": None}]}


# -- export, move -----------------------------------------------------------------------------


def test_export_into_a_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    """`export -o /nonexistent/dir/x.jsonl` created the folder, silently."""
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}"}
    assert run("run", TRIP, "--no-input", env=env).code == 3
    sid = run("list", "--json", env=env).json()[0]["id"]
    target = tmp_path / "nonexistent" / "dir" / "x.jsonl"
    refused = run("export", sid, "-o", str(target), env=env)
    assert refused.code == 2
    assert refused.stderr.count("\n") == 1
    assert "does not exist" in refused.stderr
    assert not (tmp_path / "nonexistent").exists()


def test_the_move_hint_is_a_command_to_paste(tmp_path: Path, pg_url: str) -> None:
    """The hint printed a placeholder, and the URL it printed masked the user name: the
    user's name stays, the password is masked in the message and left out of the command."""
    from urllib.parse import urlsplit

    laptop = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 'laptop.db'}"}
    assert run("run", TRIP, "--no-input", env=laptop).code == 3
    sid = run("list", "--json", env=laptop).json()[0]["id"]
    parts = urlsplit(pg_url)
    moved = run("move", sid, "--to", pg_url, env=laptop)
    assert moved.code == 0, moved.stderr
    assert parts.password
    assert parts.password not in moved.stdout + moved.stderr
    masked = pg_url.replace(f":{parts.password}@", ":****@")
    assert masked in moved.stdout
    bare = pg_url.replace(f":{parts.password}@", "@")
    assert f"agentctl resume {sid} --store {bare}" in moved.stderr
    assert "URL (" not in moved.stderr  # no placeholder
    refused = run("resume", sid, "--input", "x", env=laptop)
    assert f"--store {bare}" in refused.stderr
    # Pasted (the password where libpq looks for it), it continues the session there.
    done = run(
        "resume", sid, "--input", "next Monday", "--store", bare, env={"PGPASSWORD": parts.password}
    )
    assert done.code == 0, done.stderr


def test_a_user_name_alone_in_a_store_url_is_shown(tmp_path: Path) -> None:
    from agentctl.config import pasteable_url, redact_url

    assert redact_url("postgresql://alice@db/x", keep_user=True) == "postgresql://alice@db/x"
    assert pasteable_url("postgresql://alice:****@db/x") == "postgresql://alice@db/x"
    assert pasteable_url("postgresql://****@db/x") is None  # an older record: not pasteable
    assert redact_url("http://sk-key@proxy/v1") == "http://****@proxy/v1"  # a model server's


# -- memory: ----------------------------------------------------------------------------------


def test_a_memory_store_session_is_not_offered_to_resume() -> None:
    """`memory:` printed "answer with: agentctl resume ID" for a session that is gone."""
    paused = run("run", TRIP, "--no-input", "--store", "memory:")
    assert paused.code == 3
    assert "agentctl resume" not in paused.stderr + paused.stdout
    assert "keeps nothing" in paused.stderr


# -- name and tags travel; a moved copy lists as moved ----------------------------------------


@pytest.mark.parametrize("store_kind", ["sqlite", "json", "postgres"], indirect=True)
def test_export_import_and_move_keep_the_name_and_tags(tmp_path: Path, store_kind: str) -> None:
    """`export` and `move` dropped the session's name and tags."""
    laptop = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 'laptop.db'}"}
    there = {"AGENTCTL_STORE": store_kind}
    assert run("run", TRIP, "--no-input", env=laptop).code == 3
    sid = run("list", "--json", env=laptop).json()[0]["id"]
    assert run("rename", sid, "lisbon trip", env=laptop).code == 0
    assert run("tag", sid, "travel", "2026", env=laptop).code == 0
    export = tmp_path / "s.jsonl"
    assert run("export", sid, "-o", str(export), env=laptop).code == 0
    elsewhere = {"AGENTCTL_STORE": f"json://{tmp_path / 'elsewhere'}"}
    assert run("import", str(export), env=elsewhere).code == 0
    [imported] = run("list", "--json", env=elsewhere).json()
    assert (imported["name"], imported["tags"]) == ("lisbon trip", ["travel", "2026"])
    assert run("show", "lisbon trip", env=elsewhere).code == 0  # the name works there
    moved = run("move", sid, "--to", store_kind, env=laptop)
    assert moved.code == 0, moved.stderr
    [arrived] = run("list", "--json", env=there).json()
    assert (arrived["name"], arrived["tags"]) == ("lisbon trip", ["travel", "2026"])


def test_hostile_labels_in_an_export_are_refused(tmp_path: Path) -> None:
    import json

    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 'a.db'}"}
    assert run("run", TRIP, "--no-input", env=env).code == 3
    sid = run("list", "--json", env=env).json()[0]["id"]
    lines = run("export", sid, env=env).stdout.splitlines()
    for labels in ({"name": "a\nb", "tags": []}, {"name": None, "tags": ["two words"]}, [1]):
        header = json.loads(lines[0])
        header["labels"] = labels
        forged = tmp_path / "forged.jsonl"
        forged.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
        refused = run("import", str(forged), env={"AGENTCTL_STORE": f"json://{tmp_path / 'j'}"})
        assert refused.code == 2, labels
        assert "line 1" in refused.stderr


def test_a_moved_away_copy_lists_as_moved_and_list_state_moved_finds_it(
    tmp_path: Path,
) -> None:
    """A moved-away copy listed as `done (succeeded)` (or as the state it left in), and
    `list --state moved` was refused."""
    laptop = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 'laptop.db'}"}
    team = f"json://{tmp_path / 'team'}"
    assert run("run", TRIP, "--no-input", env=laptop).code == 3
    sid = run("list", "--json", env=laptop).json()[0]["id"]
    assert run("move", sid, "--to", team, env=laptop).code == 0
    [record] = run("list", "--json", env=laptop).json()
    assert record["state"] == "moved"
    assert [s["id"] for s in run("list", "--state", "moved", "--json", env=laptop).json()] == [sid]
    assert run("list", "--state", "waiting_feedback", "--json", env=laptop).json() == []
    table = run("list", env=laptop)
    assert "moved" in table.stdout
    assert "waiting" not in table.stdout
    assert run("verify", env=laptop).code == 0  # the index agrees with the head
    assert run("resume", "--no-input", env=laptop).code == 2  # no unfinished session here


@pytest.mark.parametrize("store_kind", ["sqlite", "json", "postgres"], indirect=True)
def test_a_copy_a_move_has_not_released_does_not_run_and_can_be_removed(
    tmp_path: Path, store_kind: str
) -> None:
    """What a move killed after its copy leaves in the target: one line, exit 4, saying how
    to finish it; `rm` deletes it (the move run again writes it anew)."""
    from agentctl.store.lease import arriving_lease
    from agentctl.usecases import transfer

    laptop = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 'laptop.db'}"}
    assert run("run", TRIP, "--no-input", env=laptop).code == 3
    sid = run("list", "--json", env=laptop).json()[0]["id"]
    source = open_store(laptop["AGENTCTL_STORE"])
    exported = transfer.read_export(transfer.export_lines(source, sid), "test")
    source.close()
    target = open_store(store_kind)
    transfer.import_session(target, exported, lease=arriving_lease("cut-short"))
    target.close()
    there = {"AGENTCTL_STORE": store_kind}
    refused = run("resume", sid, "--input", "June", env=there)
    assert refused.code == 4
    assert "arriving from another store" in refused.stderr
    assert run("rm", sid, "--yes", env=there).code == 0
    assert run("move", sid, "--to", store_kind, env=laptop).code == 0
    assert run("resume", sid, "--input", "June", env=there).code == 0


# -- usage ------------------------------------------------------------------------------------


def test_usage_counts_a_forks_copied_checkpoints_once(tmp_path: Path) -> None:
    """Two forks with no model call raised one model's cost from $8.40 to $14.70: the
    checkpoints a fork copies carry its origin's usage, which was counted already."""
    config = tmp_path / "settings.toml"
    config.write_text("[prices]\nscripted = [1000000.0, 2000000.0]\n")
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}", "AGENTCTL_CONFIG": str(config)}
    assert run("run", TRIP, "--no-input", env=env).code == 3
    sid = run("list", "--json", env=env).json()[0]["id"]
    [before] = run("usage", "--json", env=env).json()
    assert before["calls"] > 0
    assert run("fork", sid, env=env).code == 0
    assert run("fork", sid, "--at", "2", env=env).code == 0
    [after] = run("usage", "--json", env=env).json()
    assert after["sessions"] == 3
    for key in ("calls", "prompt_tokens", "completion_tokens", "cost_usd"):
        assert after[key] == before[key], key
    rows = run("usage", "--by", "session", "--json", env=env).json()
    forks = [r for r in rows if r["session"] != sid]
    assert [r["calls"] for r in forks] == [0, 0]


# -- commands that make no store --------------------------------------------------------------


READ_ONLY = [
    ["list"],
    ["list", "--json"],
    ["show", "abc"],
    ["history", "abc"],
    ["search", "delta"],
    ["usage"],
    ["verify"],
    ["export", "abc"],
    ["diff", "abc"],
    ["profile", "show"],
    ["resume", "abc", "--input", "x"],
    ["rollback", "abc", "--to", "1"],
    ["rename", "abc", "x"],
    ["tag", "abc", "x"],
    ["rm", "abc", "--yes"],
    ["fork", "abc"],
]


@pytest.mark.parametrize("store_kind", ["sqlite", "json", "postgres"], indirect=True)
def test_a_command_that_makes_no_session_never_creates_a_store(
    tmp_path: Path, store_kind: str
) -> None:
    """`list --store` on a missing path created folders and a 53 KB database, and said "no
    sessions yet": a mistyped URL looked like an empty store. Now one line, exit 2, and
    nothing made: no folder, no file, no schema."""
    import psycopg

    env = {"AGENTCTL_STORE": store_kind}
    for args in READ_ONLY:
        refused = run(*args, env=env)
        assert refused.code == 2, (args, refused.stderr)
        assert refused.stderr.startswith("error: there is no agentctl store at"), args
        assert refused.stderr.count("\n") == 2, args  # the error and what to try
    assert not (tmp_path / "store").exists()
    assert not (tmp_path / "jsonstore").exists()
    if store_kind.startswith("postgres"):
        with psycopg.connect(store_kind) as db:
            found = db.execute(
                "SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = 'agentctl'"
            ).fetchone()
        assert found == (0,)
    assert run("profile", "set", "airline", "Delta", env=env).code == 0  # this one makes it
    assert run("list", "--json", env=env).json() == []


def test_the_default_store_before_anything_is_saved_reads_as_empty(agentctl_home: Path) -> None:
    """Where no store was named, `list` on a new machine says there are no sessions, and
    still makes nothing."""
    listed = run("list")
    assert listed.code == 0
    assert "no sessions yet" in listed.stderr
    assert run("verify").code == 0
    assert run("show", "abc").code == 2
    assert not agentctl_home.exists()


# -- damage is reported and removable ---------------------------------------------------------


def _paused(url: str) -> str:
    env = {"AGENTCTL_STORE": url}
    assert run("run", TRIP, "--no-input", env=env).code == 3
    return str(run("list", "--json", env=env).json()[0]["id"])


def _sql(path: Path, statement: str) -> None:
    db = sqlite3.connect(path)
    db.execute(statement)
    db.commit()
    db.close()


def test_sqlite_facts_that_are_not_json_are_reported_and_removable(tmp_path: Path) -> None:
    """SQLite `verify` passed a session whose info is not JSON, and `rm` could not delete it."""
    path = tmp_path / "s.db"
    env = {"AGENTCTL_STORE": f"sqlite://{path}"}
    sid, other = _paused(env["AGENTCTL_STORE"]), _paused(env["AGENTCTL_STORE"])
    _sql(path, f"UPDATE sessions SET info = 'not json' WHERE id = '{sid}'")
    verified = run("verify", env=env)
    assert verified.code == 6
    assert "facts" in verified.stdout + verified.stderr
    removed = run("rm", sid, "--yes", env=env)
    assert removed.code == 0, removed.stderr
    assert [s["id"] for s in run("list", "--json", env=env).json()] == [other]
    assert run("verify", env=env).code == 0


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"], indirect=True)
def test_one_bad_tags_value_is_one_damaged_row_not_a_failed_list(store_kind: str) -> None:
    """One bad `tags` value made `list` fail for the whole store."""
    import psycopg

    env = {"AGENTCTL_STORE": store_kind}
    sid, other = _paused(store_kind), _paused(store_kind)
    statement = f"UPDATE agentctl.sessions SET tags = '{{oops' WHERE id = '{sid}'"
    if store_kind.startswith("sqlite"):
        _sql(Path(store_kind.removeprefix("sqlite://")), statement.replace("agentctl.", ""))
    else:
        with psycopg.connect(store_kind) as db:
            db.execute(statement)
    listed = {s["id"]: s for s in run("list", "--json", env=env).json()}
    assert listed[sid]["state"] == "damaged"
    assert listed[other]["state"] == "waiting_feedback"
    assert "damaged" in run("list", env=env).stdout
    verified = run("verify", env=env)
    assert verified.code == 6
    assert "cannot list it" in verified.stdout
    assert run("tag", sid, "repaired", env=env).code == 0  # tags written whole again
    assert {s["id"]: s for s in run("list", "--json", env=env).json()}[sid]["tags"] == ["repaired"]
    assert run("verify", env=env).code == 0


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("info.json", b"not json"),
        ("info.json", b"[1, 2]"),
        ("lease.json", b"not json"),
        ("lease.json", b'{"host": 1, "pid": "x", "token": [], "expires_at": "soon"}'),
        ("lease.json", b"[]"),
        ("lease.json", None),  # a folder where the file belongs
    ],
)
def test_jsonl_rm_deletes_a_session_with_a_bad_info_or_lease(
    tmp_path: Path, name: str, damage: bytes | None
) -> None:
    """On JSON lines, `rm` failed on a bad `info.json` or `lease.json`."""
    root = tmp_path / "j"
    env = {"AGENTCTL_STORE": f"json://{root}"}
    sid, other = _paused(env["AGENTCTL_STORE"]), _paused(env["AGENTCTL_STORE"])
    target = root / "sessions" / sid / name
    target.unlink(missing_ok=True)
    if damage is None:
        target.mkdir()
    else:
        target.write_bytes(damage)
    removed = run("rm", sid, "--yes", env=env)
    assert removed.code == 0, removed.stderr
    assert not (root / "sessions" / sid).exists()
    assert [s["id"] for s in run("list", "--json", env=env).json()] == [other]


# -- import reads as it checks ----------------------------------------------------------------


def test_import_of_an_endless_stream_is_refused_after_one_bounded_read(tmp_path: Path) -> None:
    """`import /dev/zero` read its whole input before any check: a MemoryError. Run with a
    1 GiB address-space limit, as a machine with less memory would be."""
    import os
    import resource
    import subprocess
    import sys

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    env = {**os.environ, "AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}"}
    for args in (["/dev/zero"], ["-"]):
        done = subprocess.run(
            [sys.executable, "-m", "agentctl", "import", *args],
            stdin=open("/dev/zero", "rb") if args == ["-"] else subprocess.DEVNULL,  # noqa: SIM115
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            preexec_fn=limited,
        )
        assert done.returncode == 2, done.stderr
        assert "longer than" in done.stderr
        assert done.stderr.count("\n") == 1
    assert not (tmp_path / "s.db").exists()


def test_an_export_is_read_line_by_line_and_the_first_bad_line_stops_it(tmp_path: Path) -> None:
    from agentctl.usecases.transfer import stream_lines

    class Counting:
        """A stream that says how much was read of it."""

        def __init__(self, lines: list[bytes]) -> None:
            self.lines, self.read = lines, 0

        def readline(self, limit: int) -> bytes:
            self.read += 1
            return self.lines.pop(0) if self.lines else b""

    stream = Counting([b"not an export\n", *[b"x\n"] * 1000])
    from agentctl.errors import UsageError
    from agentctl.usecases.transfer import read_export

    with pytest.raises(UsageError, match="line 1"):
        read_export(stream_lines(stream, "s"), "s")  # type: ignore[arg-type]
    assert stream.read == 1
    bad = Counting([b"\xff\xfe\n"])
    with pytest.raises(UsageError, match="not UTF-8"):
        list(stream_lines(bad, "s"))  # type: ignore[arg-type]


# -- a reader that goes away ------------------------------------------------------------------


def test_a_run_whose_output_is_closed_stops_saved_and_resumes(tmp_path: Path) -> None:
    """`agentctl run … | head` left the session mid-run with exit 1 and no message. Now the
    run stops as Ctrl-C stops it (exit 130, every step saved), says so on stderr, and
    resumes to its end."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}",
        "AGENTCTL_SCRIPTED_DELAY": "0.3",  # the reader is gone before the run is
    }
    reader = subprocess.Popen(
        [sys.executable, "-m", "agentctl", "run", TRIP, "--json", "--no-input"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert reader.stdout is not None
    assert reader.stderr is not None
    assert b"session.started" in reader.stdout.readline()
    reader.stdout.close()  # as `head -1` does
    stderr = reader.stderr.read().decode()
    assert reader.wait(timeout=60) == 130, stderr
    assert "Traceback" not in stderr
    sid = run("list", "--json", env={"AGENTCTL_STORE": env["AGENTCTL_STORE"]}).json()[0]["id"]
    assert f"agentctl resume {sid}" in stderr
    plain = {"AGENTCTL_STORE": env["AGENTCTL_STORE"]}
    assert run("resume", sid, "--no-input", env=plain).code == 3  # on to its question
    assert run("resume", sid, "--input", "next Monday", env=plain).code == 0
    assert run("verify", env=plain).code == 0
