"""The PostgreSQL store beyond the shared contract: the fence, the server's clock, a server that
goes away, shared user state, and the password that must never show."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agentctl.domain.lifecycle import CheckpointKind
from agentctl.errors import HeadMovedError, SessionBusyError
from agentctl.store import open_store
from agentctl.store.lease import Lease
from agentctl.testing.postgres import PASSWORD, ThrowawayPostgres
from agentctl.testing.store_spec import build, draft
from tests.conftest import SAMPLES, cli, run
from tests.test_concurrency import spawn

TASK = str(SAMPLES / "release_notes.toml")


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params or None)  # type: ignore[call-overload]
        return cur.fetchall() if cur.description else []


# -- one line, exit 6, nothing written ---------------------------------------------------------


def test_an_unreachable_server_is_one_line_and_exit_6(postgres: Any) -> None:
    url = f"postgresql://agentctl:{PASSWORD}@127.0.0.1:1/agentctl"
    result = run("list", env={"AGENTCTL_STORE": url})
    assert result.code == 6
    assert "cannot open PostgreSQL store" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_a_wrong_password_or_a_missing_database_is_exit_6_without_the_password(
    pg_url: str,
) -> None:
    wrong = pg_url.replace(PASSWORD, "not-the-password")
    for url in (wrong, pg_url.rsplit("/", 1)[0] + "/no_such_db"):
        result = run("list", env={"AGENTCTL_STORE": url})
        assert result.code == 6, result.stderr
        assert len(result.stderr.strip().splitlines()) <= 2  # the error and its hint
        assert "not-the-password" not in result.stderr
        assert PASSWORD not in result.stderr


def test_a_schema_from_a_newer_agentctl_is_refused_before_anything_is_written(
    pg_url: str,
) -> None:
    open_store(pg_url).close()
    sql(pg_url, "UPDATE agentctl.schema_version SET version = 99")
    tables = sql(pg_url, "SELECT count(*) FROM information_schema.tables")
    result = run("run", "Say hi", "--model", "m", env={"AGENTCTL_STORE": pg_url})
    assert result.code == 6
    assert "newer than this agentctl" in result.stderr
    assert sql(pg_url, "SELECT count(*) FROM information_schema.tables") == tables
    assert sql(pg_url, "SELECT count(*) FROM agentctl.sessions") == [(0,)]


def test_the_password_is_never_shown_nor_stored(pg_url: str) -> None:
    env = {"AGENTCTL_STORE": pg_url}
    assert run("run", TASK, env=env).code == 0
    shown = run("config", "show", env=env)
    assert shown.code == 0
    sid = run("list", "--json", env=env).json()[0]["id"]
    outputs = [shown, run("show", sid, "--json", env=env), run("history", sid, env=env)]
    for result in outputs:
        assert PASSWORD not in result.stdout + result.stderr
    assert "****" in shown.stdout
    stored = sql(
        pg_url,
        "SELECT string_agg(info, '') FROM agentctl.sessions UNION ALL"
        " SELECT string_agg(task || detail, '') FROM agentctl.checkpoints UNION ALL"
        " SELECT string_agg(body, '') FROM agentctl.messages",
    )
    assert all(PASSWORD not in (text or "") for (text,) in stored)


def test_migrations_from_several_machines_at_once_run_once(postgres: Any) -> None:
    url = postgres.database("racing_migrations")
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            open_store(url).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    from agentctl.store.postgres_migrations import SCHEMA_VERSION

    assert sql(url, "SELECT version FROM agentctl.schema_version") == [(SCHEMA_VERSION,)]


# -- the fence ---------------------------------------------------------------------------------


def test_a_writer_whose_lease_was_taken_over_writes_nothing(pg_url: str) -> None:
    """Same head, different holder: only the lease, checked by the server in the statement
    that writes, stops the stale writer."""
    a, b = open_store(pg_url), open_store(pg_url)
    try:
        build(a, 2)
        a.acquire_lease("abc123", Lease("host-a", 111, "token-a", time.time() + 1.0, "ann"))
        sql(pg_url, "SELECT pg_sleep(1.2)")  # the server's clock passes the lease's end
        b.acquire_lease("abc123", Lease("host-b", 222, "token-b", time.time() + 30, "bob"))
        with pytest.raises(SessionBusyError, match="process 222 on bob@host-b"):
            a.append("abc123", 2, draft(2, 3, "from a, after the takeover"))
        assert len(b.history("abc123")) == 2
        b.append("abc123", 2, draft(2, 3, "from b"))
        with pytest.raises(HeadMovedError):
            a.append("abc123", 2, draft(2, 3, "from a, again"))
        assert [m.content for m in b.load("abc123").messages] == ["m1", "m2", "from b"]
    finally:
        a.close()
        b.close()


def test_a_lease_is_judged_by_the_servers_clock_not_the_writers(pg_url: str) -> None:
    """A laptop whose clock is an hour fast still cannot outlive its lease on the server."""
    store = open_store(pg_url)
    try:
        build(store, 1)
        store.acquire_lease("abc123", Lease("host-a", 1, "t-a", time.time() + 1.0))
        expires = sql(pg_url, "SELECT lease_expires - clock_timestamp() FROM agentctl.sessions")
        assert expires[0][0].total_seconds() <= 1.0
    finally:
        store.close()


@pytest.fixture
def slow_env(pg_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "AGENTCTL_STORE": pg_url,
        "AGENTCTL_LEASE_TTL": "2",
        "AGENTCTL_SCRIPTED_LOG": str(tmp_path / "requests.log"),
    }


def test_a_paused_writer_wakes_up_refused_and_wrote_nothing_after_the_takeover(
    slow_env: dict[str, str], tmp_path: Path
) -> None:
    """Laptop lid closed (SIGSTOP) past the lease; a second host takes the session over and
    finishes it; the first wakes up, is refused (exit 4) and has added nothing."""
    assert cli("run", TASK, "--max-turns", "1", env=slow_env).code == 1
    sid = cli("list", "--json", env=slow_env).json()[0]["id"]
    log = tmp_path / "requests.log"
    asked = len(log.read_text().split())
    a = spawn(
        ["resume", sid],
        {**slow_env, "AGENTCTL_HOSTNAME": "laptop", "AGENTCTL_SCRIPTED_DELAY": "1.5"},
    )
    try:
        wait_for(lambda: len(log.read_text().split()) > asked, "the laptop's model call")
        a.send_signal(signal.SIGSTOP)
        url = slow_env["AGENTCTL_STORE"]
        wait_for(
            lambda: sql(url, "SELECT lease_expires < clock_timestamp() FROM agentctl.sessions")[0][
                0
            ],
            "the laptop's lease to expire",
        )
        b = cli("resume", sid, env={**slow_env, "AGENTCTL_HOSTNAME": "server"})
        assert b.code == 0, b.stderr
        finished = cli("history", sid, "--json", env=slow_env).json()
    finally:
        a.send_signal(signal.SIGCONT)
    _out, err = a.communicate(timeout=60)
    assert a.returncode == 4, err
    assert "Traceback" not in err
    assert cli("history", sid, "--json", env=slow_env).json() == finished
    assert cli("verify", sid, env=slow_env).code == 0


# -- a server that goes away -------------------------------------------------------------------


@pytest.fixture
def own_server() -> Iterator[ThrowawayPostgres]:
    """A server of this test's own, to stop and start."""
    server = ThrowawayPostgres()
    try:
        server.start()
    except Exception as exc:  # the shared fixture already decided skip or fail
        pytest.skip(f"no PostgreSQL: {exc}")
    try:
        yield server
    finally:
        server.stop()


def test_a_server_stopped_mid_run_is_exit_6_and_the_run_resumes_when_it_is_back(
    own_server: ThrowawayPostgres, tmp_path: Path
) -> None:
    log = tmp_path / "requests.log"
    env = {
        "AGENTCTL_STORE": own_server.url,
        "AGENTCTL_SCRIPTED_DELAY": "1.0",
        "AGENTCTL_SCRIPTED_LOG": str(log),
    }
    proc = spawn(["run", TASK], env)
    # The second request: the first goes out before the session's first checkpoint is written.
    wait_for(lambda: log.exists() and len(log.read_text().split()) >= 2, "a second model call")
    own_server.stop_server()
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 6, err
    assert "Traceback" not in err
    own_server.start_server()
    resumed = cli("resume", env={**env, "AGENTCTL_SCRIPTED_DELAY": "0"})
    assert resumed.code == 0, resumed.stderr
    assert cli("verify", env=env).code == 0


def test_a_connection_dropped_during_a_long_model_call_is_opened_again(
    pg_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "requests.log"
    env = {
        "AGENTCTL_STORE": pg_url,
        "AGENTCTL_SCRIPTED_DELAY": "1.0",
        "AGENTCTL_SCRIPTED_LOG": str(log),
    }
    proc = spawn(["run", TASK], env)
    wait_for(lambda: log.exists() and len(log.read_text().split()) >= 2, "a second model call")
    database = pg_url.rsplit("/", 1)[1]
    # What an idle timeout, a failover or a restarted pooler does to a connection.
    sql(
        pg_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()",
        database,
    )
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert cli("verify", env=env).code == 0


# -- shared user state -------------------------------------------------------------------------


def test_two_machines_updating_the_profile_at_once_lose_nothing(pg_url: str) -> None:
    def writer(prefix: str) -> None:
        store = open_store(pg_url)
        try:
            for n in range(15):
                store.update_profile(lambda p, n=n: p.remember(f"{prefix}{n}", "x"))
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    store = open_store(pg_url)
    try:
        assert len(store.load_profile().preferences) == 45
    finally:
        store.close()


def test_each_user_has_a_profile_of_their_own(pg_url: str) -> None:
    env = {"AGENTCTL_STORE": pg_url}
    assert run("profile", "set", "airline", "Delta", env={**env, "AGENTCTL_USER": "ann"}).code == 0
    assert run("profile", "set", "airline", "KLM", env={**env, "AGENTCTL_USER": "bob"}).code == 0
    ann = run("profile", "show", "--json", env={**env, "AGENTCTL_USER": "ann"})
    assert "Delta" in ann.stdout
    assert "KLM" not in ann.stdout


def test_kinds_round_trip(pg_url: str) -> None:
    store = open_store(pg_url)
    try:
        build(store, 3)
        kinds = [store.get_checkpoint("abc123", n).kind for n in (1, 2, 3)]
        assert kinds == [
            CheckpointKind.NEW_TASK,
            CheckpointKind.PLAN_READY,
            CheckpointKind.MODEL_REPLY,
        ]
    finally:
        store.close()


def test_a_deleted_session_takes_its_rows_and_only_its_rows_with_it(pg_url: str) -> None:
    """The messages and checkpoints of a session go with its row (a trigger since p008, where
    foreign keys did it before), in the same statement; another session's stay."""
    store = open_store(pg_url)
    try:
        build(store, 3)
        build(store, 2, "def456")
        store.delete_session("abc123")
        for table in ("messages", "checkpoints"):
            rows = f"SELECT session_id, count(*) FROM agentctl.{table} GROUP BY 1"
            assert sql(pg_url, rows) == [("def456", 2)]
        assert store.check() == []
    finally:
        store.close()


def test_rows_whose_session_is_gone_are_what_verify_reports(pg_url: str) -> None:
    """No foreign key checks each insert (an append's rows come from the session row its fenced
    update holds), so a row written past agentctl without its session is found by check()."""
    store = open_store(pg_url)
    try:
        build(store, 2)
        sql(pg_url, "INSERT INTO agentctl.messages VALUES ('gone01', 1, NULL, '{}')")
        sql(
            pg_url,
            "INSERT INTO agentctl.checkpoints SELECT 'gone01', id, parent, event, from_state,"
            " to_state, created_at, detail, task, usage, message_tip FROM agentctl.checkpoints",
        )
        assert store.check() == [
            "table agentctl.checkpoints: 2 rows of sessions that are not there",
            "table agentctl.messages: 1 rows of sessions that are not there",
        ]
    finally:
        store.close()


def test_a_session_removed_while_it_is_forked_never_leaves_a_fork_without_checkpoints(
    pg_url: str,
) -> None:
    """`rm` of a session between two statements of its fork (each reads anew): the fork had
    its messages and no checkpoint (head 0) and was said to have worked. The copy holds the
    source's row now, so the removal waits for it. The fork is made to stop between its two
    statements by a message row of the same key another transaction is writing: its first
    statement waits for it, the second reads after the removal."""
    from agentctl.errors import UnknownSessionError
    from agentctl.testing.store_spec import info

    store, other = open_store(pg_url), open_store(pg_url)
    blocker = psycopg.connect(pg_url)  # a transaction, left open until the removal was tried
    done: dict[str, Any] = {}

    def waiting() -> int:
        return int(sql(pg_url, "SELECT count(*) FROM pg_locks WHERE NOT granted")[0][0])

    def fork() -> None:
        try:
            done["fork"] = store.copy_session(store, "abc123", info("fork01"))
        except UnknownSessionError as exc:
            done["fork"] = exc

    def remove() -> None:
        other.delete_session("abc123")
        done["rm"] = True

    try:
        build(store, 3)
        blocker.execute("INSERT INTO agentctl.messages VALUES ('fork01', 1, NULL, '{}')")
        forking = threading.Thread(target=fork)
        forking.start()
        wait_for(lambda: waiting() == 1, "the fork to wait between its statements")
        removing = threading.Thread(target=remove)
        removing.start()
        wait_for(lambda: "rm" in done or waiting() == 2, "the removal to end or wait")
        blocker.rollback()
        forking.join(30)
        removing.join(30)
        assert done == {"fork": 3, "rm": True}  # the fork, whole, then the removal
        assert [c.id for c in store.history("fork01")] == [1, 2, 3]
        assert store.check() == []
    finally:
        blocker.close()
        store.close()
        other.close()


def test_a_store_upgraded_while_sessions_are_written_fails_neither(
    postgres: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """p007 -> p008 while other processes append (an older agentctl, already open): the
    migration took the tables one statement at a time, in the other order from an append's
    one statement, and the server broke the deadlock by failing the upgrade (the command that
    opened the store) or an append (a running session's step): both, in most rounds."""
    from agentctl.store import postgres_migrations as pm

    full = list(pm.MIGRATIONS)
    failures: list[str] = []
    for round_ in range(4):
        url = postgres.database(f"upgrade_{round_}_{time.monotonic_ns()}")
        monkeypatch.setattr(pm, "MIGRATIONS", full[:7])
        monkeypatch.setattr(pm, "SCHEMA_VERSION", 7)
        writers = [open_store(url) for _ in range(3)]  # an older agentctl's, open before
        monkeypatch.setattr(pm, "MIGRATIONS", full)
        monkeypatch.setattr(pm, "SCHEMA_VERSION", len(full))
        stop = threading.Event()

        def write(store: Any, session_id: str, stop: threading.Event = stop) -> None:
            build(store, 1, session_id)
            n = 2
            while not stop.is_set():
                try:
                    store.append(session_id, n - 1, draft(n - 1, n, f"m{n}"))
                except Exception as exc:
                    failures.append(f"append: {exc}")
                    return
                n += 1

        threads = [threading.Thread(target=write, args=(w, f"w{k}")) for k, w in enumerate(writers)]
        for thread in threads:
            thread.start()
        heads = "SELECT count(*), min(head) FROM agentctl.sessions"
        wait_for(lambda u=url, q=heads: sql(u, q)[0] >= (3, 20), "each session to be written")
        try:
            open_store(url).close()  # the upgrade
        except Exception as exc:
            failures.append(f"upgrade: {exc}")
        time.sleep(0.2)  # appends after it too
        stop.set()
        for thread in threads:
            thread.join(30)
        for writer in writers:
            writer.close()
        assert sql(url, "SELECT version FROM agentctl.schema_version") == [(len(full),)] or failures
    assert failures == []


def test_a_lease_row_that_expires_at_infinity_is_a_refusal_or_nothing_never_an_error(
    pg_url: str,
) -> None:
    """'infinity' and '-infinity' are timestamps PostgreSQL keeps, and subtracting one is an
    error: the lease's seconds left were read so, and an append refused by such a lease, a
    lease read (watch) and every worker's claim of the queue failed with it."""
    from agentctl.store import pg_queue
    from agentctl.store.lease import Lease

    store = open_store(pg_url)
    try:
        build(store, 1)
        build(store, 1, "def456")
        pg_queue.on(store).with_connection(lambda conn: pg_queue.enqueue(conn, "def456"))
        held = "UPDATE agentctl.sessions SET lease_token = 'remote', lease_host = 'h',"
        sql(pg_url, held + " lease_pid = 7, lease_expires = 'infinity' WHERE id = 'abc123'")
        assert store.lease_of("abc123") is None  # no lease agentctl writes
        with pytest.raises(SessionBusyError):
            store.append("abc123", 1, draft(1, 2, "m2"))
        sql(pg_url, "UPDATE agentctl.queue SET status = 'running' WHERE session_id = 'def456'")
        sql(pg_url, held + " lease_pid = 7, lease_expires = '-infinity' WHERE id = 'def456'")
        lease = Lease.mine("worker")
        claimed, _expiry = pg_queue.on(store).with_connection(
            lambda conn: pg_queue.claim(conn, "default", lease, "w")
        )
        assert claimed is not None  # its lease is long expired: the session is taken
        assert claimed.session_id == "def456"
    finally:
        store.close()


def test_libpq_conventions_and_agentctl_options_in_the_url(pg_url: str, tmp_path: Path) -> None:
    from agentctl.store.pg_connection import connection_options

    dsn, options = connection_options("postgres://u:pw@h:5/db?prepare_threshold=0&sslmode=disable")
    assert dsn == "postgresql://u:pw@h:5/db?sslmode=disable"  # libpq gets only its own
    assert options["prepare_threshold"] == 0
    bare = pg_url.replace(f":{PASSWORD}@", "@").replace("postgresql://", "postgres://")
    made = run(
        "profile", "set", "airline", "Delta", env={"AGENTCTL_STORE": bare, "PGPASSWORD": PASSWORD}
    )
    assert made.code == 0  # `list` makes no store
    assert run("list", env={"AGENTCTL_STORE": bare, "PGPASSWORD": PASSWORD}).code == 0
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:*:*:agentctl:{PASSWORD}\n")
    pgpass.chmod(0o600)
    assert run("list", env={"AGENTCTL_STORE": bare, "PGPASSFILE": str(pgpass)}).code == 0
    assert (
        run("list", "--store", bare + "?prepare_threshold=0", env={"PGPASSWORD": PASSWORD}).code
        == 0
    )
