"""A damaged store is refused, never spread: every kind of damage the attack on the stores found,
on the backend it belongs to, through the real CLI (in process).

For each: no command prints a traceback or hangs; a failing command says one `error:` line with
its exit code; `verify` names the damage (exit 6); `resume` of the damaged session is exit 6 and
writes nothing. Reading commands show what they can. Then a property test: random single-byte and
single-line damage never yields a traceback, a hang or a write to a session verify flags.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SAMPLES, Result, run

TRIP = str(SAMPLES / "plan_trip.toml")


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """A hang is a failure, not a stuck test run."""

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError(f"no answer within {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def fingerprint(root: Path) -> dict[str, str]:
    """What a store holds: every file's digest (SQLite's journal files aside)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm")) and p.name != "lock"
    }


def one_line(result: Result, *codes: int) -> None:
    assert result.code in codes, (result.code, result.stdout, result.stderr)
    if result.code != 0:
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
        assert len(errors) == 1, result.stderr


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One store per backend with one session paused at its question (plan_trip)."""
    made = {}
    for kind in ("sqlite", "json"):
        root = tmp_path_factory.mktemp(kind)
        url = f"sqlite://{root / 's.db'}" if kind == "sqlite" else f"json://{root / 'j'}"
        home = tmp_path_factory.mktemp("home")
        env = {"AGENTCTL_STORE": url, "AGENTCTL_HOME": str(home)}
        assert run("run", TRIP, "--no-input", env=env).code == 3
        made[kind] = root
        made[f"{kind} home"] = home  # the user's data folder: their grant of the session
    return made


@pytest.fixture
def store(templates: dict[str, Path], tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    kind = request.param
    root = tmp_path / "store"
    shutil.copytree(templates[kind], root)
    # The same user with a copy of their store: their word on its session comes along.
    shutil.copytree(
        templates[f"{kind} home"] / "trust", Path(os.environ["AGENTCTL_HOME"]) / "trust"
    )
    return root


def url_of(root: Path) -> str:
    return f"sqlite://{root / 's.db'}" if (root / "s.db").exists() else f"json://{root / 'j'}"


def session_dir(root: Path) -> Path:
    return next((root / "j" / "sessions").iterdir())


def rewrite_log(root: Path, change: Callable[[list[bytes]], list[bytes]]) -> None:
    log = session_dir(root) / "events.jsonl"
    lines = log.read_bytes().split(b"\n")[:-1]
    log.write_bytes(b"\n".join(change(lines)) + b"\n")


def edit_line(n: int, edit: Callable[[dict], None]) -> Callable[[list[bytes]], list[bytes]]:  # type: ignore[type-arg]
    def change(lines: list[bytes]) -> list[bytes]:
        record = json.loads(lines[n])
        edit(record)
        lines[n] = json.dumps(record).encode()
        return lines

    return change


# JSON nested deeper than Python's parser goes: json.loads raises RecursionError, which is
# not a ValueError.
DEEP = "[" * 100_000 + "]" * 100_000


def _replace_with_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


JSONL_DAMAGE: dict[str, Callable[[Path], None]] = {
    "a line that is 42": lambda r: rewrite_log(r, lambda ls: [*ls[:2], b"42", *ls[3:]]),
    "a line that is {}": lambda r: rewrite_log(r, lambda ls: [*ls[:2], b"{}", *ls[3:]]),
    "no messages key": lambda r: rewrite_log(r, edit_line(2, lambda d: d.pop("messages"))),
    "no checkpoint key": lambda r: rewrite_log(r, edit_line(2, lambda d: d.pop("checkpoint"))),
    "a message parent pointing nowhere": lambda r: rewrite_log(
        r, edit_line(1, lambda d: d["messages"][0].update(parent=999))
    ),
    "a head tip pointing nowhere": lambda r: rewrite_log(
        r, edit_line(-1, lambda d: d["checkpoint"].update(message_tip=999))
    ),
    "a message chain cycle": lambda r: rewrite_log(
        r, edit_line(1, lambda d: d["messages"][0].update(parent=d["messages"][0]["id"]))
    ),
    "invalid UTF-8 in a line": lambda r: rewrite_log(
        r, lambda ls: [*ls[:1], ls[1].replace(b"planning", b"plan\xff\xfeing"), *ls[2:]]
    ),
    "a parent of 99": lambda r: rewrite_log(
        r, edit_line(-1, lambda d: d["checkpoint"].update(parent=99))
    ),
    "a duplicate checkpoint id": lambda r: rewrite_log(r, lambda ls: [*ls[:3], ls[2], *ls[3:]]),
    "a gap": lambda r: rewrite_log(r, lambda ls: [*ls[:2], *ls[3:]]),
    "an invalid state mid-log": lambda r: rewrite_log(
        r, edit_line(2, lambda d: d["checkpoint"].update(to_state="bogus"))
    ),
    "a wrong next_message_id": lambda r: rewrite_log(
        r, edit_line(-1, lambda d: d.update(next_message_id=2))
    ),
    "info.json not JSON": lambda r: (session_dir(r) / "info.json").write_text("{nope"),
    "a line nested too deep": lambda r: rewrite_log(
        r, lambda ls: [*ls[:2], DEEP.encode(), *ls[3:]]
    ),
    "info.json nested too deep": lambda r: (session_dir(r) / "info.json").write_text(DEEP),
    "events.jsonl a directory": lambda r: _replace_with_dir(session_dir(r) / "events.jsonl"),
    "info.json a directory": lambda r: _replace_with_dir(session_dir(r) / "info.json"),
    "lock a directory": lambda r: _replace_with_dir(session_dir(r) / "lock"),
}  # fmt: skip


def sql(root: Path, statement: str) -> None:
    db = sqlite3.connect(root / "s.db")
    db.execute(statement)
    db.commit()
    db.close()


SQLITE_DAMAGE: dict[str, Callable[[Path], None]] = {
    "detail not JSON": lambda r: sql(r, "UPDATE checkpoints SET detail = '{nope' WHERE id = 2"),
    "detail not an object": lambda r: sql(r, "UPDATE checkpoints SET detail = '[1]' WHERE id = 2"),
    "detail nested too deep": lambda r: sql(
        r, f"UPDATE checkpoints SET detail = '{DEEP}' WHERE id = 2"
    ),
    "a message body nested too deep": lambda r: sql(
        r, f"UPDATE messages SET body = '{DEEP}' WHERE id = 2"
    ),
    "a task state nested too deep": lambda r: sql(
        r, f"UPDATE checkpoints SET task = '{DEEP}' WHERE id = (SELECT max(id) FROM checkpoints)"
    ),
    "a message body that is garbage": lambda r: sql(
        r, "UPDATE messages SET body = 'garbage' WHERE id = 2"
    ),
    "a state that is not a state": lambda r: sql(
        r, "UPDATE checkpoints SET to_state = 'bogus' WHERE id = (SELECT max(id) FROM checkpoints)"
    ),
    "a message chain cycle": lambda r: sql(
        r, "UPDATE messages SET parent = (SELECT max(id) FROM messages) WHERE id = 1"
    ),
    "a parent of 99": lambda r: sql(
        r, "UPDATE checkpoints SET parent = 99 WHERE id = (SELECT max(id) FROM checkpoints)"
    ),
    "a task state that is not valid": lambda r: sql(
        r, "UPDATE checkpoints SET task = '{}' WHERE id = (SELECT max(id) FROM checkpoints)"
    ),
}  # fmt: skip


def commands(root: Path) -> Iterator[tuple[str, Result]]:
    env = {"AGENTCTL_STORE": url_of(root)}
    listed = run("list", "--json", env=env)
    yield "list", listed
    sid = None
    if listed.code == 0:
        sid = listed.json()[0]["id"]
    else:
        if (root / "j").exists():
            sid = session_dir(root).name
        else:
            (sid,) = sqlite3.connect(root / "s.db").execute("SELECT id FROM sessions").fetchone()
    for args in (["show", sid], ["history", sid], ["show", sid, "--json"]):
        yield args[0], run(*args, env=env)
    yield "verify", run("verify", env=env)
    yield "resume", run("resume", sid, "--input", "next Monday", env=env)


def check_refused(root: Path) -> None:
    before = fingerprint(root)
    with deadline(30):
        results = dict(commands(root))
    for name, result in results.items():
        if name != "verify":  # verify's answer is a report on stdout, not one error line
            one_line(result, 0, 6)
    assert results["verify"].code == 6, results["verify"].stdout
    assert results["resume"].code == 6, results["resume"].stderr
    assert fingerprint(root) == before  # nothing written


@pytest.mark.parametrize("store", ["json"], indirect=True)
@pytest.mark.parametrize("damage", sorted(JSONL_DAMAGE))
def test_jsonl_damage_is_refused_not_spread(store: Path, damage: str) -> None:
    JSONL_DAMAGE[damage](store)
    check_refused(store)


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
@pytest.mark.parametrize("damage", sorted(SQLITE_DAMAGE))
def test_sqlite_damage_is_refused_not_spread(store: Path, damage: str) -> None:
    SQLITE_DAMAGE[damage](store)
    check_refused(store)


@pytest.mark.parametrize("store", ["json"], indirect=True)
def test_one_damaged_jsonl_session_does_not_hide_the_others(store: Path) -> None:
    env = {"AGENTCTL_STORE": url_of(store)}
    assert run("run", TRIP, "--no-input", env=env).code == 3
    damaged = session_dir(store)
    (damaged / "info.json").write_text("{nope")
    listed = run("list", "--json", env=env)
    assert listed.code == 0
    states = {s["id"]: s["state"] for s in listed.json()}
    assert states[damaged.name] == "damaged"
    assert sorted(states.values()) == ["damaged", "waiting_feedback"]


@pytest.mark.parametrize("store", ["sqlite", "json"], indirect=True)
def test_a_rollback_past_the_damage_makes_the_session_writable_again(store: Path) -> None:
    env = {"AGENTCTL_STORE": url_of(store)}
    if (store / "s.db").exists():
        SQLITE_DAMAGE["a parent of 99"](store)
    else:
        JSONL_DAMAGE["a parent of 99"](store)
    sid = run("list", "--json", env=env).json()[0]["id"]
    one_line(run("resume", sid, "--input", "x", env=env), 6)
    history = run("history", sid, "--json", env=env).json()
    assert run("rollback", sid, "--to", str(len(history) - 1), env=env).code == 0
    assert run("resume", sid, "--no-input", env=env).code == 3  # written to: at its question
    assert run("resume", sid, "--input", "next Monday", env=env).code == 0


def test_verify_finds_dropped_tables_and_files_that_are_folders(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    env = {"AGENTCTL_STORE": f"sqlite://{db}"}
    assert run("run", TRIP, "--no-input", env=env).code == 3
    sql(tmp_path, "DROP TABLE leases")
    result = run("verify", env=env)
    assert result.code == 6
    assert "table leases is missing" in result.stdout
    jenv = {"AGENTCTL_STORE": f"json://{tmp_path / 'j'}"}
    assert run("run", TRIP, "--no-input", env=jenv).code == 3
    _replace_with_dir(tmp_path / "j" / "profile.json")
    result = run("verify", env=jenv)
    assert result.code == 6
    assert "profile.json is not a file" in result.stdout


def test_timestamps_going_backwards_are_damage(tmp_path: Path) -> None:
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}"}
    assert run("run", TRIP, "--no-input", env=env).code == 3
    sql(tmp_path, "UPDATE checkpoints SET created_at = '2000-01-01' WHERE id = 3")
    result = run("verify", env=env)
    assert result.code == 6
    assert "checkpoint 3 is dated 2000-01-01, before checkpoint 2" in result.stdout


# -- what is not agentctl's is never changed -------------------------------------------------


def test_another_programs_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    other = sqlite3.connect(db)
    other.execute("CREATE TABLE notes (body TEXT)")
    other.commit()
    other.close()
    before = db.read_bytes()
    result = run("list", "--store", f"sqlite://{db}")
    one_line(result, 6)
    assert "not an agentctl store" in result.stderr
    assert db.read_bytes() == before  # no tables added, not switched to WAL


def test_a_folder_of_other_files_is_not_made_a_store(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8")
    folder.chmod(0o2775)  # setgid, as a shared folder has
    result = run("list", "--store", f"json://{folder}")
    one_line(result, 6)
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg"]
    assert folder.stat().st_mode & 0o7777 == 0o2775


def test_a_device_is_not_a_store(tmp_path: Path) -> None:
    result = run("list", "--store", "sqlite:///dev/null")
    one_line(result, 6)
    assert "not a regular file" in result.stderr


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_damage_where_an_append_writes_refuses_the_lease_and_writes_nothing(store: Path) -> None:
    """The search index is read by the append only: damage there (here the file cut short
    inside the index's last page) failed the run's first append after its lease was written
    and released, and closing the store wrote those pages back, so a refused resume had
    changed the file. The lease now reads what the append writes through first, in its own
    transaction."""
    db = sqlite3.connect(store / "s.db")
    (last,) = db.execute("SELECT name FROM dbstat ORDER BY pageno DESC LIMIT 1").fetchone()
    db.close()
    assert last.startswith("message_text")  # the index's pages are the newest, at the end
    content = (store / "s.db").read_bytes()
    (store / "s.db").write_bytes(content[:-2000])  # cut short inside its last page
    env = {"AGENTCTL_STORE": url_of(store)}
    sid = run("list", "--json", env=env).json()[0]["id"]
    before = fingerprint(store)
    refused = run("resume", sid, "--input", "next Monday", env=env)
    one_line(refused, 6)
    assert fingerprint(store) == before


@pytest.mark.parametrize("store", ["sqlite", "json"], indirect=True)
def test_a_read_only_store_can_be_listed_shown_and_verified(store: Path) -> None:
    env = {"AGENTCTL_STORE": url_of(store) + "?mode=ro"}
    before = fingerprint(store)
    sid = run("list", "--json", env=env).json()[0]["id"]
    assert run("show", sid, env=env).code == 0
    assert run("history", sid, env=env).code == 0
    assert run("verify", env=env).code == 0
    refused = run("resume", sid, "--input", "x", env=env)
    one_line(refused, 6)
    assert "read" in refused.stderr  # read-only, said so
    one_line(run("run", TRIP, "--no-input", env=env), 6)
    assert fingerprint(store) == before


# -- random damage ---------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["sqlite", "json"], indirect=True)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)
@given(data=st.data())
def test_random_damage_never_yields_a_traceback_a_hang_or_a_silent_write(
    store: Path, data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("case")
    shutil.rmtree(root)
    shutil.copytree(store, root)
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and p.stat().st_size]
    target = data.draw(st.sampled_from(files), label="file")
    content = bytearray(target.read_bytes())
    if data.draw(st.booleans(), label="a whole line"):
        lines = bytes(content).split(b"\n")
        n = data.draw(st.integers(0, len(lines) - 1), label="line")
        lines[n] = data.draw(st.sampled_from([b"", b"{}", b"42", b"null", b"[]", b'{"x":1}']))
        content = bytearray(b"\n".join(lines))
    else:
        at = data.draw(st.integers(0, len(content) - 1), label="offset")
        content[at] = data.draw(st.integers(0, 255), label="byte")
    target.write_bytes(bytes(content))
    env = {"AGENTCTL_STORE": url_of(root)}
    with deadline(30):
        verified = run("verify", env=env)
        assert verified.code in (0, 6)
        listed = run("list", "--json", env=env)
        one_line(listed, 0, 6)
        if listed.code != 0 or not listed.json():
            return
        sid = listed.json()[0]["id"]
        for args in (["show", sid], ["history", sid]):
            one_line(run(*args, env=env), 0, 6)
        before = fingerprint(root)
        resumed = run("resume", sid, "--input", "next Monday", env=env)
        one_line(resumed, 0, 2, 6)
        if verified.code == 6 and resumed.code != 0:
            assert fingerprint(root) == before


def test_details_holding_other_types_are_shown_not_a_traceback(tmp_path: Path) -> None:
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}"}
    assert run("run", TRIP, "--no-input", env=env).code == 3
    sql(tmp_path, """UPDATE checkpoints SET detail = '{"tools": [1, 2], "steps": 7}'""")
    sid = run("list", "--json", env=env).json()[0]["id"]
    shown = run("history", sid, env=env)
    assert shown.code == 0
    assert "model replied" in shown.stdout  # a list of numbers is not a list of tool names
    assert "Traceback" not in shown.stdout + shown.stderr


@pytest.mark.parametrize("store", ["json"], indirect=True)
@pytest.mark.parametrize("labels", ["{nope", DEEP])
def test_damaged_labels_are_one_line_and_do_not_stop_a_resume(store: Path, labels: str) -> None:
    """Names and tags are not history: damage to them is reported, never a traceback, and the
    session still continues."""
    (session_dir(store) / "labels.json").write_text(labels)
    with deadline(30):
        results = dict(commands(store))
    for name, result in results.items():
        if name != "verify":
            one_line(result, 0, 6)
    assert results["verify"].code == 6, results["verify"].stdout
    assert results["resume"].code == 0, results["resume"].stderr


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE sessions SET model = X'ff'",
        "UPDATE sessions SET created_at = X'ff'",
        "UPDATE sessions SET updated_at = X'ff'",
        "UPDATE sessions SET usage = 'garbage'",
        "UPDATE sessions SET usage = X'00ff'",
    ],
)
def test_usage_and_prune_on_an_edited_session_row_say_one_line_not_an_internal_error(
    tmp_path: Path, edit: str
) -> None:
    """`usage` and `prune --dry-run` read the session rows in SQL (81c8560): bytes where text
    belongs made them stop on a TypeError (exit 1, 'a bug in agentctl'), and usage that is not
    JSON on SQLite's 'malformed JSON', naming no session."""
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}"}
    for _ in range(2):  # one edited, one sound: compared when grouped
        assert run("run", TRIP, "--no-input", env=env).code == 3
    sid = run("list", "--json", env=env).json()[0]["id"]
    sql(tmp_path, f"{edit} WHERE id = '{sid}'")
    for args in (["usage"], ["usage", "--by", "day"], ["usage", "--since", "2020-01-01"]):
        result = run(*args, env=env)
        one_line(result, 0, 6)
        if result.code == 6:
            assert sid in result.stderr
    one_line(run("prune", "--dry-run", "--older-than", "0d", env=env), 0)
    for args in (["list"], ["list", "--json"]):  # the row listed as damaged, not a TypeError
        one_line(run(*args, env=env), 0)
