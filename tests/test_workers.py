"""Workers on a real PostgreSQL (issue 28): sessions queued with `run --detach`, run by
`agentctl worker` processes, answered with `answer` from anywhere; a worker killed with -9 or
told to stop (SIGTERM); caps. Every wait is a bounded poll; nothing is timed."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentctl.config import Settings
from tests.conftest import run
from tests.test_concurrency import spawn
from tests.test_postgres import sql, wait_for

pytestmark = pytest.mark.process

PLAN = """
[[script]]
[[script.tool_calls]]
name = "submit_plan"
arguments = { steps = ["Do it"] }
"""
FINISH = """
[[script]]
[[script.tool_calls]]
name = "complete_step"
arguments = { summary = "done" }
[[script.tool_calls]]
name = "finish"
arguments = { result = "finished: {{last_input}}" }
"""
ASK = """
[[script]]
[[script.tool_calls]]
name = "ask_user"
arguments = { question = "Which day?" }
"""
STEP = """
[[script]]
[[script.tool_calls]]
name = "write_file"
arguments = { path = "step.txt", content = "a step" }
"""
SHELL = """
[[script]]
[[script.tool_calls]]
name = "run_shell"
arguments = { command = "echo approved > shell.txt" }
"""
KINDS = {
    "straight": PLAN + FINISH,  # 2 model replies, to done
    "asks": PLAN + ASK + FINISH,  # waits for an answer, then done with it
    "approves": PLAN + SHELL + FINISH,  # a command no rule allows: waits for its approval
    "fails": PLAN,  # its script runs out at the second request: the run fails
}


def task_file(folder: Path, kind: str, script: str | None = None) -> Path:
    path = folder / f"{kind}.toml"
    body = KINDS[kind] if script is None else script
    path.write_text(f'goal = "A {kind} task"\nallow = ["write_file"]\n{body}')
    return path


def queue(url: str, task: Path, work: Path, **detach: Any) -> str:
    """`run TASK --detach`, in this process (a real process costs a second each)."""
    from agentctl.usecases import common, runs

    settings = Settings.load(store=url)
    report = runs.start_session(
        settings,
        common.read_task(str(task)),
        max_turns=None,
        ask=None,
        on_event=lambda _event: None,
        workspace=work,
        detach=runs.Detach(**detach),
    )
    return report.session.info.id


def statuses(url: str) -> dict[str, str]:
    return dict((r[0], r[1]) for r in sql(url, "SELECT session_id, status FROM agentctl.queue"))


def worker_env(url: str, tmp: Path, name: str, **extra: str) -> dict[str, str]:
    return {
        "AGENTCTL_STORE": url,
        "AGENTCTL_HOME": str(tmp / f"home-{name}"),  # another machine's user data
        "AGENTCTL_HOSTNAME": name,
        "AGENTCTL_WORKER_DIR": str(tmp / f"scratch-{name}"),
        "AGENTCTL_WORKER_POLL": "0.5",
        "AGENTCTL_LEASE_TTL": "3",
        **extra,
    }


@pytest.fixture
def workers() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `agentctl worker` processes; any still running at the end are killed."""
    started: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
        proc = spawn(["worker", "--model", "scripted", *args], env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def drained(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    return code, proc.stderr.read() if proc.stderr else ""


def replies(url: str, sid: str) -> list[int]:
    """The checkpoint numbers of a session's model replies."""
    rows = sql(
        url,
        "SELECT id FROM agentctl.checkpoints WHERE session_id = %s AND event = 'model_reply'"
        " ORDER BY id",
        sid,
    )
    return [r[0] for r in rows]


def test_three_workers_run_thirty_sessions_each_step_once_and_take_every_answer(
    pg_url: str, tmp_path: Path, workers: Callable[..., subprocess.Popen[str]]
) -> None:
    kinds = ["straight", "asks", "fails"] * 8 + ["approves"] * 6
    tasks = {k: task_file(tmp_path, k) for k in set(kinds)}
    ids = {queue(pg_url, tasks[k], tmp_path): k for k in kinds}
    procs = [workers(worker_env(pg_url, tmp_path, f"w{n}"), "--concurrency", "2") for n in range(3)]
    waits = {"straight": "done", "asks": "waiting", "approves": "waiting", "fails": "failed"}
    wanted = {sid: waits[k] for sid, k in ids.items()}
    wait_for(lambda: statuses(pg_url) == wanted, "every session done, waiting or failed", 90)
    asking = [sid for sid, k in ids.items() if k in ("asks", "approves")]
    for sid in asking:  # answered (or approved: y) from here, as from any machine
        text = f"day of {sid}" if ids[sid] == "asks" else "y"
        result = run("answer", sid, text, env={"AGENTCTL_STORE": pg_url})
        assert result.code == 0, result.stderr
        assert result.stdout.strip() == sid
    wait_for(
        lambda: all(statuses(pg_url)[sid] == "done" for sid in asking), "every answer taken", 90
    )
    for proc in procs:
        code, err = drained(proc)
        assert code == 0, err
    # Each session ran each step once: its model replies are exactly its script's, in one line
    # of checkpoints (no branch, no repeat), and the answer it got is the one given for it.
    script_replies = {"straight": 2, "asks": 3, "fails": 1, "approves": 3}
    for sid, kind in ids.items():
        assert len(replies(pg_url, sid)) == script_replies[kind], (sid, kind)
        parents = sql(
            pg_url,
            "SELECT count(*) FROM agentctl.checkpoints WHERE session_id = %s"
            " AND parent IS DISTINCT FROM id - 1 AND id > 1",
            sid,
        )
        assert parents == [(0,)], sid
    for sid in asking:
        result = sql(
            pg_url,
            "SELECT task FROM agentctl.checkpoints WHERE session_id = %s ORDER BY id DESC LIMIT 1",
            sid,
        )[0][0]
        if ids[sid] == "asks":
            assert f"finished: day of {sid}" in result
        else:  # the command ran once, approved, in the folder of the worker that ran it
            ran = [tmp_path / f"scratch-w{n}" / sid / "shell.txt" for n in range(3)]
            assert [p.read_text() for p in ran if p.exists()] == ["approved\n"]
        answers = sql(
            pg_url,
            "SELECT count(*) FROM agentctl.checkpoints WHERE session_id = %s"
            " AND event = 'input_received'",
            sid,
        )
        assert answers == [(1,)]
    failed = sql(pg_url, "SELECT error FROM agentctl.queue WHERE status = 'failed'")
    assert len(failed) == 8
    assert all("script ran out" in (e or "") for (e,) in failed), failed
    # each session worked in a folder of the worker that ran it
    folders = {p.name for n in range(3) for p in (tmp_path / f"scratch-w{n}").glob("*")}
    assert folders == set(ids)
    listed = run("list", "--json", env={"AGENTCTL_STORE": pg_url})
    assert '"status": "done"' in listed.stdout


def test_a_worker_killed_mid_step_loses_nothing_its_session_finishes_on_another(
    pg_url: str, tmp_path: Path, workers: Callable[..., subprocess.Popen[str]]
) -> None:
    task = task_file(tmp_path, "long", PLAN + STEP + STEP + FINISH)
    sid = queue(pg_url, task, tmp_path)
    slow = workers(worker_env(pg_url, tmp_path, "a", AGENTCTL_SCRIPTED_DELAY="0.7"))
    wait_for(lambda: len(replies(pg_url, sid)) >= 2, "the first worker midway", 60)
    slow.kill()  # kill -9: its lease stays behind until it expires
    slow.wait(timeout=30)
    assert statuses(pg_url)[sid] == "running"
    listed = run("list", env={"AGENTCTL_STORE": pg_url})
    assert f"running on a:{slow.pid}" in listed.stdout  # where it runs (ran: its lease says)
    head = sql(pg_url, "SELECT head FROM agentctl.sessions WHERE id = %s", sid)[0][0]
    other = workers(worker_env(pg_url, tmp_path, "b"))
    wait_for(lambda: statuses(pg_url)[sid] == "done", "the session done on the other worker", 60)
    assert drained(other)[0] == 0
    assert len(replies(pg_url, sid)) == 4  # each reply once: none asked again after the kill
    hosts = sql(
        pg_url,
        "SELECT claims, (SELECT count(*) FROM agentctl.checkpoints WHERE session_id = %s"
        " AND id <= %s) FROM agentctl.queue WHERE session_id = %s",
        sid,
        head,
        sid,
    )
    assert hosts == [(2, head)]  # claimed twice; the checkpoints before the kill all kept
    writes = sql(
        pg_url,
        "SELECT count(*) FROM agentctl.checkpoints WHERE session_id = %s AND event = 'tool_result'",
        sid,
    )
    assert writes[0][0] >= 2  # both writes have results (one may be outcome-unknown)


def test_sigterm_drains_the_step_is_kept_and_the_session_goes_back_to_the_queue(
    pg_url: str, tmp_path: Path, workers: Callable[..., subprocess.Popen[str]]
) -> None:
    task = task_file(tmp_path, "longer", PLAN + STEP + STEP + STEP + FINISH)
    sid = queue(pg_url, task, tmp_path)
    first = workers(worker_env(pg_url, tmp_path, "a", AGENTCTL_SCRIPTED_DELAY="0.5"))
    wait_for(lambda: len(replies(pg_url, sid)) >= 2, "the worker midway", 60)
    code, err = drained(first)
    assert code == 0, err
    assert "stopped" in err
    lease = sql(pg_url, "SELECT lease_token FROM agentctl.sessions WHERE id = %s", sid)
    assert lease == [(None,)]  # released
    assert statuses(pg_url)[sid] == "runnable"
    before = replies(pg_url, sid)
    assert len(before) < 5  # it stopped before the end
    second = workers(worker_env(pg_url, tmp_path, "b"))
    wait_for(lambda: statuses(pg_url)[sid] == "done", "the session done on the next worker", 60)
    assert drained(second)[0] == 0
    assert len(replies(pg_url, sid)) == 5
    assert replies(pg_url, sid)[: len(before)] == before


def test_caps_per_worker_and_per_queue_hold(
    pg_url: str, tmp_path: Path, workers: Callable[..., subprocess.Popen[str]]
) -> None:
    task = task_file(tmp_path, "short", PLAN + STEP + FINISH)
    ids = [queue(pg_url, task, tmp_path, queue="capped") for _ in range(6)]
    slow = {"AGENTCTL_SCRIPTED_DELAY": "0.3"}
    args = ("--queue", "capped", "--concurrency", "3")
    a = workers(worker_env(pg_url, tmp_path, "a", **slow), *args, "--queue-limit", "2")
    limit = "SELECT max_running FROM agentctl.queue_limits WHERE queue = 'capped'"
    wait_for(lambda: sql(pg_url, limit) == [(2,)], "the first worker to set the cap", 30)
    b = workers(worker_env(pg_url, tmp_path, "b", **slow), *args)
    most = 0

    def running() -> bool:
        nonlocal most
        live = sql(
            pg_url,
            "SELECT count(*) FROM agentctl.sessions WHERE lease_token IS NOT NULL"
            " AND lease_expires > clock_timestamp()",
        )[0][0]
        most = max(most, live)
        return all(s == "done" for s in statuses(pg_url).values())

    wait_for(running, "all six done", 90)
    assert set(statuses(pg_url)) == set(ids)
    assert 1 <= most <= 2
    for proc in (a, b):
        assert drained(proc)[0] == 0


def test_detach_and_workers_need_postgres_one_line_exit_2(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'a.db'}"
    task = task_file(tmp_path, "straight")
    for args in (
        ["run", str(task), "--detach"],
        ["answer", "abc", "yes"],
        ["resume", "abc", "--detach"],
        ["worker"],
    ):
        result = run(*args, env={"AGENTCTL_STORE": url})
        assert result.code == 2, (args, result.stderr)
        assert "PostgreSQL" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "a.db").exists()


def test_answer_refuses_a_session_not_waiting_and_a_second_answer_not_yet_taken(
    pg_url: str, tmp_path: Path
) -> None:
    from agentctl.usecases import common, runs

    env = {"AGENTCTL_STORE": pg_url}
    sid = queue(pg_url, task_file(tmp_path, "asks"), tmp_path)
    result = run("answer", sid, "Monday", env=env)  # planning: nothing asked yet
    assert result.code == 2
    assert "not waiting for input" in result.stderr
    paused = runs.start_session(  # run here until it asks (no worker, no prompt)
        Settings.load(store=pg_url),
        common.read_task(str(task_file(tmp_path, "asks"))),
        max_turns=None,
        ask=None,
        on_event=lambda _event: None,
        workspace=tmp_path,
    )
    waiting = paused.session.info.id
    assert run("answer", waiting, "Monday", env=env).code == 0
    again = run("answer", waiting, "Tuesday", env=env)
    assert again.code == 2
    assert "answered already" in again.stderr
    assert sql(pg_url, "SELECT input FROM agentctl.queue WHERE session_id = %s", waiting) == [
        ("Monday",)
    ]


def test_a_model_servers_pace_is_shared_and_a_429_slows_it_for_every_worker(pg_url: str) -> None:
    """The database keeps each model server's next free request slot: every worker's request
    takes the next one, so together they keep the rate; a 429 seen by one worker holds the
    server back for all of them. (The waits are the server's arithmetic, not measured.)"""
    import psycopg

    from agentctl.store import open_store, pg_queue

    open_store(pg_url).close()
    with (
        psycopg.connect(pg_url, autocommit=True) as one,
        psycopg.connect(pg_url, autocommit=True) as other,
    ):
        assert pg_queue.next_slot(one, "http://llm") == 0  # no pace set: never waits
        pg_queue.set_rate(one, "http://llm", 2.0)  # 2 requests a second, all workers
        waits = [pg_queue.next_slot(c, "http://llm") for c in (one, other, one, other)]
        assert waits[0] < 0.5
        assert waits[1] > 0.2  # the second worker's request waits for its slot
        assert waits[3] > waits[2] > waits[1]
        pg_queue.slow_down(one, "http://other-llm", 30.0)  # one worker saw a 429
        assert pg_queue.next_slot(other, "http://other-llm") > 20  # the other waits too


def write(path: str, content: str) -> str:
    return f"""
[[script]]
[[script.tool_calls]]
name = "write_file"
arguments = {{ path = "{path}", content = "{content}" }}
"""


def test_a_session_moves_between_workers_its_files_follow_and_a_rollback_restores_them(
    pg_url: str, tmp_path: Path, workers: Callable[..., subprocess.Popen[str]]
) -> None:
    """Paused on one worker, answered, resumed on another (another machine: its own data
    folder and scratch folder): the files the first wrote are there; rolled back from a third
    place, the second worker's folder is put back as it was at that checkpoint."""
    env = {"AGENTCTL_STORE": pg_url}
    script = (
        PLAN + write("a.txt", "from the first worker") + ASK + write("b.txt", "second") + FINISH
    )
    sid = queue(pg_url, task_file(tmp_path, "moving", script), tmp_path)
    first = workers(worker_env(pg_url, tmp_path, "a"))
    wait_for(lambda: statuses(pg_url)[sid] == "waiting", "the question, on the first worker", 60)
    assert drained(first)[0] == 0
    assert (tmp_path / "scratch-a" / sid / "a.txt").exists()
    second = workers(worker_env(pg_url, tmp_path, "b"))
    assert run("answer", sid, "go on", env=env).code == 0
    wait_for(lambda: statuses(pg_url)[sid] == "done", "the session done on the second", 60)
    there = tmp_path / "scratch-b" / sid
    assert (there / "a.txt").read_text() == "from the first worker"  # it followed
    assert (there / "b.txt").read_text() == "second"
    question = sql(
        pg_url,
        "SELECT max(id) FROM agentctl.checkpoints WHERE session_id = %s AND event = 'needs_input'",
        sid,
    )[0][0]
    # from a third place, which never ran it: its diff, and a fork of its files
    diff = run("diff", sid, "--stat", env=env)
    assert diff.code == 0, diff.stderr
    assert "a.txt" in diff.stdout
    assert "b.txt" in diff.stdout
    fork = run("fork", sid, "--at", str(question), "--workspace", str(tmp_path / "f"), env=env)
    assert fork.code == 0, fork.stderr
    assert (tmp_path / "f" / "a.txt").read_text() == "from the first worker"
    assert not (tmp_path / "f" / "b.txt").exists()
    preview = run("rollback", sid, "--to", str(question), "--dry-run", env=env)
    assert preview.code == 0, preview.stderr
    assert "b.txt" in preview.stdout  # what the next worker will take away
    assert "a.txt" not in preview.stdout
    back = run("rollback", sid, "--to", str(question), env=env)
    assert back.code == 0, back.stderr
    assert run("resume", sid, "--detach", env=env).code == 0
    wait_for(lambda: statuses(pg_url)[sid] == "waiting", "the question again, on the second", 60)
    assert (there / "a.txt").read_text() == "from the first worker"
    assert not (there / "b.txt").exists()  # restored as it was at the question
    assert drained(second)[0] == 0


def test_a_429_one_worker_gets_holds_the_server_back_for_every_worker(pg_url: str) -> None:
    """The real client, a real 429 (with Retry-After) from the scripted server, through a
    worker's shared pace: the server's slow-down is in the database, where every worker's
    next request reserves its slot after it."""
    import psycopg

    from agentctl.domain.session import Message, ScriptTurn
    from agentctl.llm.openai_chat import ModelConfig, OpenAIModelClient
    from agentctl.llm.scripted import Fault, ScriptedModel, ScriptedServer
    from agentctl.store import pg_queue
    from agentctl.usecases.worker import SharedPace, Worker, WorkerOptions

    worker = Worker(Settings.load(store=pg_url), WorkerOptions(), lambda _line: None)
    model = ScriptedModel((ScriptTurn(content="hi"),), faults=[Fault(status=429, retry_after=20)])
    with ScriptedServer(model) as srv:
        config = ModelConfig(model="m", base_url=srv.base_url, api_key=None, max_retries=1)
        slept: list[float] = []
        client = OpenAIModelClient(config, sleep=slept.append, pace=SharedPace(worker, "llm"))
        client.complete([Message(role="user", content="hi")], [], lambda _text: None)
    worker.stop()
    worker.run()  # stopped at once: it closes its connection
    assert slept == [20.0]  # this worker waited as the server asked
    with psycopg.connect(pg_url, autocommit=True) as other:  # another worker's next request
        assert pg_queue.next_slot(other, "llm") > 10


def test_a_worker_runs_only_what_stays_in_its_sandbox_unless_told_otherwise(
    pg_url: str, tmp_path: Path, workers: Callable[..., subprocess.Popen[str]]
) -> None:
    """Whoever can write the store queues work for its workers: a session asking for the
    network and secrets for its commands is not run by a default worker (failed, saying why,
    nothing run); `resume --detach` and a worker started with --accept-any-settings run it."""
    wide = tmp_path / "wide"
    wide.mkdir()
    asks = queue(
        pg_url, task_file(wide, "straight", 'pass_env = ["TOKEN"]\n' + KINDS["straight"]), tmp_path
    )
    plain = queue(pg_url, task_file(tmp_path, "straight"), tmp_path)
    first = workers(worker_env(pg_url, tmp_path, "a"))
    wait_for(lambda: statuses(pg_url) == {asks: "failed", plain: "done"}, "both looked at", 60)
    assert drained(first)[0] == 0
    error = sql(pg_url, "SELECT error FROM agentctl.queue WHERE session_id = %s", asks)[0][0]
    assert "pass_env" in error
    assert "--accept-any-settings" in error
    assert replies(pg_url, asks) == []  # nothing ran
    assert run("resume", asks, "--detach", env={"AGENTCTL_STORE": pg_url}).code == 0
    wider = workers(worker_env(pg_url, tmp_path, "b"), "--accept-any-settings", "--rate", "50")
    wait_for(lambda: statuses(pg_url)[asks] == "done", "run by the worker that accepts it", 60)
    assert drained(wider)[0] == 0
    # with --rate, each of its requests took a slot of the pace every worker keeps
    row = sql(
        pg_url,
        "SELECT interval_s, next_at > now() - interval '1 hour' FROM agentctl.model_servers"
        " WHERE server = 'scripted'",
    )
    assert row == [(0.02, True)]


def test_a_worker_outlives_a_restart_of_its_database(
    tmp_path: Path, workers: Callable[..., subprocess.Popen[str]]
) -> None:
    """The database restarts under an idle worker: it says so, tries again every poll, and
    takes the next session once the server is back (its LISTEN too)."""
    from agentctl.testing.postgres import ThrowawayPostgres

    server = ThrowawayPostgres()
    try:
        url = server.start()
        from agentctl.store import open_store

        open_store(url).close()
        worker = workers(worker_env(url, tmp_path, "a"))
        wait_for(
            lambda: (
                sql(url, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%'")
                != [(0,)]
            ),
            "the worker listening",
            60,
        )
        server.stop_server()
        time.sleep(1.5)  # down for three of its polls (0.5 s): it meets the closed door
        server.start_server()
        sid = queue(url, task_file(tmp_path, "straight"), tmp_path)
        wait_for(lambda: statuses(url).get(sid) == "done", "the session run after the restart", 60)
        code, err = drained(worker)
        assert code == 0, err
        assert "trying again" in err
    finally:
        server.stop()


def test_what_a_store_writer_queues_cannot_turn_a_workers_git_or_folder_against_it(
    pg_url: str, tmp_path: Path
) -> None:
    """A queued session's source and id come from whoever writes the store. A ref that is a
    git option (`--pathspec-from-file=SECRET` printed the worker's file into the queue's error),
    a repository that is one, a transport that is a file descriptor of the worker (fd::0 reads
    its terminal), or a session id that is a path out of the scratch folder: each refused, one
    line, nothing of the worker's files in it, nothing made outside the scratch folder."""
    from agentctl.errors import UsageError
    from agentctl.store.pg_queue import Claim, Source
    from agentctl.usecases.worker import Worker, WorkerOptions

    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "one"]):
        subprocess.run(
            ["git", "-c", "user.name=a", "-c", "user.email=a@b", "-C", str(repo), *args],
            check=True,
        )
    secret = tmp_path / "secret"
    secret.write_text("WORKER-SECRET-LINE\n")
    scratch = tmp_path / "scratch"
    worker = Worker(Settings.load(store=pg_url), WorkerOptions(scratch=scratch), lambda _l: None)
    try:
        hostile = [
            ("s1", Source(str(repo), f"--pathspec-from-file={secret}")),
            ("s2", Source(f"--upload-pack=touch {tmp_path / 'ran'}", None)),
            ("s3", Source("fd::0", None)),
            ("../outside", Source(None, None)),
        ]
        for sid, source in hostile:
            with pytest.raises(UsageError) as refused:
                worker._workspace(Claim(sid, "default", None, None, source, 1))
            assert "WORKER-SECRET" not in refused.value.message
            assert "\n" not in refused.value.message
        assert not (tmp_path / "outside").exists()
        assert not (tmp_path / "ran").exists()
        fine = worker._workspace(Claim("s4", "default", None, None, Source(str(repo), "HEAD"), 1))
        assert (fine / ".git").is_dir()
    finally:
        worker.stop()
        worker.run()


def test_a_priority_the_database_cannot_hold_is_refused_before_a_session_is_made(
    pg_url: str, tmp_path: Path
) -> None:
    """`run --detach --priority 2**31` made the session, then failed to queue it (exit 6,
    the session left behind, never queued): now one line, exit 2, nothing made."""
    from agentctl.store import open_store

    open_store(pg_url, create=True).close()
    task = task_file(tmp_path, "straight")
    env = {"AGENTCTL_STORE": pg_url}
    for args in (["--priority", str(2**31)], ["--repo", "--upload-pack=x"]):
        result = run("run", str(task), "--model", "scripted", "--detach", *args, env=env)
        assert result.code == 2, result.stderr
        assert "Traceback" not in result.stderr
    assert sql(pg_url, "SELECT count(*) FROM agentctl.sessions") == [(0,)]


def test_an_answer_is_never_given_to_a_question_a_rollback_put_back_in_its_place(
    pg_url: str, tmp_path: Path, workers: Callable[..., subprocess.Popen[str]]
) -> None:
    """`answer` gives "red" to "Which colour?"; before a worker takes it, a rollback from
    another machine puts the session back at "Which day?". The worker must not hand "red" to
    that question (an interactive resume never would): the session waits for an answer
    again, and the stale one is not taken."""
    from agentctl.usecases import common, runs

    env = {"AGENTCTL_STORE": pg_url}
    colour = ASK.replace("Which day?", "Which colour?")
    task = task_file(tmp_path, "asks", PLAN + ASK + colour + FINISH)
    settings = Settings.load(store=pg_url)
    paused = runs.start_session(
        settings,
        common.read_task(str(task)),
        max_turns=None,
        ask=None,
        on_event=lambda _event: None,
        workspace=tmp_path,
    )
    sid = paused.session.info.id
    day = max(c[0] for c in sql(pg_url, "SELECT id FROM agentctl.checkpoints"))
    runs.resume_session(
        settings, sid, answer="Monday", max_turns=None, ask=None, on_event=lambda _e: None
    )
    asked_colour = max(c[0] for c in sql(pg_url, "SELECT id FROM agentctl.checkpoints"))
    assert run("answer", sid, "red", env=env).code == 0
    back = run("rollback", sid, "--to", str(day), env=env)
    assert back.code == 0, back.stderr
    workers(worker_env(pg_url, tmp_path, "a"))
    wait_for(lambda: statuses(pg_url)[sid] not in ("runnable", "running"), "looked at", 60)
    given = sql(
        pg_url,
        "SELECT id FROM agentctl.checkpoints WHERE session_id = %s AND event = 'input_received'"
        " AND id > %s",
        sid,
        asked_colour,
    )
    assert given == []  # "red" was not given to "Which day?"
    assert statuses(pg_url)[sid] == "waiting"


def test_a_worker_killed_mid_clone_leaves_no_folder_taken_for_a_checkout(tmp_path: Path) -> None:
    """The first claim of a session with a repository is killed (-9) while git clones it: the
    next claim on this machine must clone it again, not run the session in what the killed
    clone left (a folder with half a .git, or an empty one)."""
    import os
    import sys
    import threading
    import types

    from agentctl.store.pg_queue import Claim, Source
    from agentctl.usecases.worker import Worker

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.txt").write_text("from the repository\n")
    for args in (["init", "-q"], ["add", "a.txt"], ["commit", "-q", "-m", "one"]):
        subprocess.run(
            ["git", "-c", "user.name=a", "-c", "user.email=a@b", "-C", str(repo), *args],
            check=True,
        )
    slow = tmp_path / "bin"
    slow.mkdir()
    (slow / "git").write_text(
        '#!/bin/sh\nfor a; do t="$a"; done\nmkdir -p "$t/.git"\nexec sleep 60\n'
    )
    (slow / "git").chmod(0o755)
    scratch = tmp_path / "scratch"
    claim = Claim("s1", "default", None, None, Source(str(repo), None), 1)
    code = (
        "import pathlib, sys, types\n"
        "from agentctl.store.pg_queue import Claim, Source\n"
        "from agentctl.usecases.worker import Worker\n"
        "import threading\n"
        "me = types.SimpleNamespace(scratch=pathlib.Path(sys.argv[1]),"
        " _clone_timeout=600.0, _draining=threading.Event())\n"
        "Worker._workspace(me, Claim('s1', 'default', None, None, Source(sys.argv[2]), 1))\n"
    )
    env = {**os.environ, "PATH": f"{slow}:{os.environ['PATH']}"}
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(scratch), str(repo)], env=env, start_new_session=True
    )
    try:
        wait_for(lambda: any(scratch.glob("*/.git")), "the clone under way", 30)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    me = types.SimpleNamespace(scratch=scratch, _clone_timeout=600.0, _draining=threading.Event())
    folder = Worker._workspace(me, claim)  # type: ignore[arg-type]
    assert (folder / "a.txt").read_text() == "from the repository\n"


def test_a_poll_interval_no_wait_can_take_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """AGENTCTL_WORKER_POLL=inf (or 1e400) crashed the worker at its first wait (an internal
    error, exit 1: OverflowError); nan, words and negatives fall back or are bounded too."""
    from agentctl.usecases.worker import poll_interval

    for given, expected in (("inf", 5.0), ("1e400", 5.0), ("nan", 5.0), ("1e12", 3600.0)):
        monkeypatch.setenv("AGENTCTL_WORKER_POLL", given)
        assert poll_interval(Settings.load()) == expected, given


class SilentGitServer:
    """A TCP server that accepts every connection and never answers: a `git://` clone from it
    hangs for as long as git is let run (git has no timeout of its own there)."""

    def __init__(self) -> None:
        import socket
        import threading

        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"git://127.0.0.1:{self._sock.getsockname()[1]}/repo"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.setblocking(False)
            self.connections.append(conn)

    def all_closed(self) -> bool:
        """Every client went away (its git was killed): the peer's end reads EOF."""
        for conn in self.connections:
            while True:
                try:
                    if conn.recv(4096) == b"":
                        break  # closed
                except BlockingIOError:
                    return False  # still open
        return True

    def close(self) -> None:
        for conn in self.connections:
            conn.close()
        self._sock.close()


@pytest.fixture
def silent_git() -> Iterator[SilentGitServer]:
    server = SilentGitServer()
    yield server
    server.close()


def test_sigterm_mid_clone_of_a_repository_that_hangs_drains_at_once(
    pg_url: str,
    tmp_path: Path,
    workers: Callable[..., subprocess.Popen[str]],
    silent_git: SilentGitServer,
) -> None:
    """A session whose repository hangs (a server that accepts and never answers) held a
    draining worker forever: SIGTERM waited on git. Now the drain kills git's process group:
    the worker exits 0 at once, the session is back in the queue as it was (runnable,
    released, nothing run), and no half clone is left in the worker's folder."""
    sid = queue(pg_url, task_file(tmp_path, "straight"), tmp_path, repo=silent_git.url)
    worker = workers(worker_env(pg_url, tmp_path, "a"))
    wait_for(lambda: bool(silent_git.connections), "git connected to the silent server", 60)
    assert statuses(pg_url)[sid] == "running"
    code, err = drained(worker)  # a bounded wait (60 s): before, it never came back
    assert code == 0, err
    assert "stopped" in err
    assert statuses(pg_url)[sid] == "runnable"
    assert sql(pg_url, "SELECT lease_token FROM agentctl.sessions WHERE id = %s", sid) == [(None,)]
    assert replies(pg_url, sid) == []
    wait_for(silent_git.all_closed, "git killed, its connection closed", 30)
    assert [p.name for p in (tmp_path / "scratch-a").iterdir()] == []


def test_a_clone_that_hangs_past_the_clone_timeout_fails_its_session_with_the_reason(
    pg_url: str,
    tmp_path: Path,
    workers: Callable[..., subprocess.Popen[str]],
    silent_git: SilentGitServer,
) -> None:
    """AGENTCTL_WORKER_CLONE_TIMEOUT bounds a checkout: git is killed, the session is failed
    with one line that says why (`resume --detach` retries it), and the worker goes on."""
    sid = queue(pg_url, task_file(tmp_path, "straight"), tmp_path, repo=silent_git.url)
    env = worker_env(pg_url, tmp_path, "a", AGENTCTL_WORKER_CLONE_TIMEOUT="1")
    worker = workers(env)
    wait_for(lambda: statuses(pg_url)[sid] == "failed", "the checkout given up", 60)
    ((error,),) = sql(pg_url, "SELECT error FROM agentctl.queue WHERE session_id = %s", sid)
    assert error.startswith(f"cannot check out {silent_git.url}: git took longer than 1 s")
    assert "AGENTCTL_WORKER_CLONE_TIMEOUT" in error
    assert "\n" not in error
    assert sql(pg_url, "SELECT lease_token FROM agentctl.sessions WHERE id = %s", sid) == [(None,)]
    wait_for(silent_git.all_closed, "git killed, its connection closed", 30)
    assert worker.poll() is None  # the worker goes on with other sessions
    code, err = drained(worker)
    assert code == 0, err
