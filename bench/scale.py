"""Scale (issue 30 item 7): the axes a real user grows on, each figure beside its floor.

- sessions: a SQLite store of 1,000 / 10,000 / 50,000 sessions (4 checkpoints, 4 messages
  each; 3 models; every 1,000th message holds a rare word), grown in place from one size to
  the next. Whole commands (`show`, `list`, `list --all`, `usage`, `prune --dry-run`,
  `search`, `verify`) beside `python -c pass` and, in process, the SQL floor of what each
  shows: the rows `list` prints, one grouped query for the sizes `prune` lists and the sums
  `usage` adds, every row decoded once for `verify`. `rm` of one session (on a copy).
- checkpoints: one session of 1,000 / 10,000 / 100,000 checkpoints: `history` (piped),
  `export`, `verify ID`, `fork`, the head and the end-of-run caches (the best of as many fresh
  sessions as commands are run, with and without the close that follows them), beside the raw
  listing of ids, a row copy in one transaction and the decode floor. Peak memory of each
  command.
- branchy: one session with a rollback every 25 steps: `history`, `history --graph`, `verify`.
- the per-turn loop (issue 30 item 5) is bench/turn.py's: `python -m bench` prints it beside
  these figures, as "per-turn loop".

Fixtures are built through the store API (`create_whole`, one transaction per session) with
the fixture connection's fsync off: the bench measures reads and copies, not how fast a disk
syncs. Growth ratios compare the largest size with the smallest (the end-of-run caches also
step by step). --quick (CI) runs small sizes and each command once.

Run: python -m bench.scale [--quick] [--sessions] [--checkpoints] [--branchy] (the axes named,
or all three)
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

WORDS = [
    *("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "while", "agent"),
    *("reads", "file", "and", "writes", "patch", "to", "fix", "failing", "test", "in"),
    *("module", "before", "running", "suite", "again"),
]
RARE = "zanzibar"  # in one message of every 1,000 sessions
TARGET = "s0000000"  # the session `show` reads: it has three forks, whatever the store's size
MODELS = ("gpt-4o", "gpt-4o-mini", "o3")
BASE = 1_700_000_000  # fixture dates: one session a minute from here
AXES = ("sessions", "checkpoints", "branchy")
COPIES = 3  # a fork's copy and the row-copy floors: the best of this many, in the same run


def stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))


def text(n: int, k: int) -> str:
    words = [WORDS[(n * 7 + k * 3 + i) % len(WORDS)] for i in range(50)]
    if n % 1000 == 7 and k == 2:
        words[10] = RARE
    return " ".join(words)


def fast(store: Any) -> Any:
    """The fixture connection without fsync: building 50,000 sessions measures no disk."""
    db = getattr(store, "_db", None)
    if isinstance(db, sqlite3.Connection):
        db.execute("PRAGMA synchronous=OFF")
    return store


def session_drafts(n: int, when: float, steps: int = 4) -> list[Any]:
    from agentctl.domain.lifecycle import CheckpointKind, State
    from agentctl.domain.session import Message, Task, Usage
    from agentctl.store.base import CheckpointDraft

    drafts = []
    for k in range(steps):
        first = k == 0
        role = "user" if first else ("assistant" if k % 2 else "tool")
        message = Message.model_validate(
            {"role": role, "content": text(n, k), "tokens": 60}
            | ({"tool_call_id": f"c{k}"} if role == "tool" else {})
        )
        drafts.append(
            CheckpointDraft(
                None if first else k,
                CheckpointKind.NEW_TASK if first else CheckpointKind.TOOL_RESULT,
                State.IDLE if first else State.PLANNING,
                State.PLANNING,
                stamp(when + k),
                Task(goal=f"goal {n}", data={"k": k}),
                Usage(calls=k, prompt_tokens=100 * k, completion_tokens=10 * k),
                new_messages=(message,),
            )
        )
    return drafts


def grow_sessions(store: Any, start: int, stop: int) -> None:
    """Sessions start..stop-1 (the first build also makes the three forks of TARGET)."""
    from agentctl.domain.session import SessionInfo, TaskSpec

    for n in range(start, stop):
        when = BASE + 60 * n
        info = SessionInfo(
            id=f"s{n:07d}",
            spec=TaskSpec(goal=f"goal {n}"),
            model=MODELS[n % 3],
            created_at=stamp(when),
        )
        store.create_whole(info, session_drafts(n, when))
        if n == 0:
            for f in range(3):
                fork = info.model_copy(update={"id": f"f{f:07d}", "forked_from": f"{TARGET}:2"})
                store.create_whole(fork, session_drafts(n, when)[:2])


def long_session(store: Any, session_id: str, steps: int, branch_every: int = 0) -> None:
    """One session of `steps` checkpoints (a rollback of 10 every `branch_every` steps)."""
    from agentctl.domain.checkpoints import RollbackDetail
    from agentctl.domain.lifecycle import CheckpointKind, State
    from agentctl.domain.session import Message, SessionInfo, Task, TaskSpec, Usage
    from agentctl.store.base import CheckpointDraft

    info = SessionInfo(id=session_id, spec=TaskSpec(goal="long"), model="m", created_at=stamp(BASE))
    drafts = [
        CheckpointDraft(
            None, CheckpointKind.NEW_TASK, State.IDLE, State.PLANNING, stamp(BASE),
            Task(goal="long"), Usage(),
        )
    ]  # fmt: skip
    head = 1
    for step in range(2, steps + 1):
        when = f"{stamp(BASE + step // 1000)}.{step % 1000:03d}"
        if branch_every and step % branch_every == 0 and head > 10:
            drafts.append(
                CheckpointDraft(
                    head - 10, CheckpointKind.ROLLBACK, State.PLANNING, State.PLANNING, when,
                    Task(goal="long"), Usage(calls=step),
                    detail=RollbackDetail(head - 10, head),
                )
            )  # fmt: skip
        else:
            role = ("user", "assistant", "tool")[step % 3]
            message = Message.model_validate(
                {"role": role, "content": text(step, 1)[:300], "tokens": 60}
                | ({"tool_call_id": f"c{step}"} if role == "tool" else {})
            )
            drafts.append(
                CheckpointDraft(
                    head, CheckpointKind.TOOL_RESULT, State.PLANNING, State.PLANNING, when,
                    Task(goal="long", data={"step": step}), Usage(calls=step),
                    new_messages=(message,),
                )
            )  # fmt: skip
        head = step
    store.create_whole(info, drafts)


# -- measuring -------------------------------------------------------------------------------


# Peak memory is the child's own high-water mark (VmHWM), read as it exits: a wait4() figure
# would also count the parent's pages, which Linux carries into the child across fork and exec.
_WRAP = (
    "import atexit, runpy, sys\n"
    "def hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            sys.stderr.write('\\n#hwm ' + line.split()[1] + '\\n')\n"
    "atexit.register(hwm)\n"
    "sys.argv = ['agentctl', *sys.argv[1:]]\n"
    "runpy.run_module('agentctl', run_name='__main__', alter_sys=True)\n"
)


def run_once(command: Sequence[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak resident MB and exit code of one fresh process, output discarded."""
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - started
    err = proc.stderr.decode(errors="replace")
    peak = [line.split()[1] for line in err.splitlines() if line.startswith("#hwm ")]
    if "Traceback" in err:
        print(err[-2000:], file=sys.stderr)
    return wall, int(peak[-1]) / 1024 if peak else 0.0, proc.returncode


def cli(args: Sequence[str], env: dict[str, str], runs: int) -> dict[str, float]:
    results = [run_once([sys.executable, "-c", _WRAP, *args], env) for _ in range(runs)]
    return {
        "s": round(statistics.median(r[0] for r in results), 3),
        "mb": round(max(r[1] for r in results), 1),
        "exit": results[0][2],
    }


def inproc(action: Callable[[], object], runs: int = 3) -> float:
    """The fastest of `runs`, in seconds (6 significant digits)."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return float(f"{best:.6g}")


def growth(rows: list[dict[str, Any]], key: str) -> float | None:
    first, last = rows[0].get(key), rows[-1].get(key)
    if not isinstance(first, dict) or not isinstance(last, dict) or not first["s"]:
        return None
    return round(last["s"] / first["s"], 2)


# -- floors: what the figures would be if the store did only what the command shows ----------


def floor_list(db: sqlite3.Connection, limit: int | None) -> object:
    sql = "SELECT id, state, goal, title, head, created_at, updated_at FROM sessions"
    sql += " ORDER BY updated_at DESC" + (f" LIMIT {limit}" if limit else "")
    return db.execute(sql).fetchall()


def floor_usage(db: sqlite3.Connection) -> object:
    return db.execute(
        "SELECT json_extract(s.info, '$.model'), count(*),"
        " sum(json_extract(c.usage, '$.prompt_tokens'))"
        " FROM sessions s JOIN checkpoints c ON c.session_id = s.id AND c.id = s.head"
        " GROUP BY 1"
    ).fetchall()


def floor_prune(db: sqlite3.Connection, cutoff: str) -> object:
    return db.execute(
        "SELECT s.id, (SELECT sum(length(body)) FROM messages m WHERE m.session_id = s.id)"
        " FROM sessions s WHERE s.updated_at < ?",
        (cutoff,),
    ).fetchall()


def floor_decode(db: sqlite3.Connection, session_id: str | None = None) -> int:
    """Every session's facts, every checkpoint's state and every message decoded once through
    the codec."""
    from agentctl.domain.session import Message, SessionInfo, Task, Usage
    from agentctl.store.codec import decode

    where, args = (" WHERE session_id = ?", (session_id,)) if session_id else ("", ())
    n = 0
    facts = " WHERE id = ?" if session_id else ""
    for (info,) in db.execute("SELECT info FROM sessions" + facts, args):
        decode(SessionInfo, info, where="")
        n += 1
    for task, usage in db.execute("SELECT task, usage FROM checkpoints" + where, args):
        decode(Task, task, where="")
        decode(Usage, usage, where="")
        n += 1
    for (body,) in db.execute("SELECT body FROM messages" + where, args):
        decode(Message, body, where="")
        n += 1
    return n


def floor_copy(db: sqlite3.Connection, session_id: str, commit: bool = False) -> float:
    """A session's rows copied under a new id in one transaction, then rolled back; with
    `commit`, committed (fsynced, as a fork's copy must be) and deleted again afterwards."""
    started = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    db.execute(
        "INSERT INTO sessions (id, info, goal, title, created_at, updated_at, head, state)"
        " SELECT 'copy0001', info, goal, title, created_at, updated_at, head, state"
        " FROM sessions WHERE id = ?",
        (session_id,),
    )
    db.execute(
        "INSERT INTO messages (session_id, id, parent, body)"
        " SELECT 'copy0001', id, parent, body FROM messages WHERE session_id = ?",
        (session_id,),
    )
    db.execute(
        "INSERT INTO checkpoints SELECT 'copy0001', id, parent, event, from_state, to_state,"
        " created_at, detail, task, usage, message_tip FROM checkpoints WHERE session_id = ?",
        (session_id,),
    )
    if commit:
        db.execute("COMMIT")
    seconds = time.perf_counter() - started
    if commit:
        db.execute("BEGIN IMMEDIATE")
        for table, key in (("checkpoints", "session_id"), ("messages", "session_id")):
            db.execute(f"DELETE FROM {table} WHERE {key} = 'copy0001'")
        db.execute("DELETE FROM sessions WHERE id = 'copy0001'")
    db.execute("COMMIT" if commit else "ROLLBACK")
    return round(seconds, 4)


def floor_search(db: sqlite3.Connection, word: str) -> object:
    return db.execute(
        "SELECT session_id, id, body FROM messages WHERE instr(body, ?) LIMIT 20", (word,)
    ).fetchall()


def session_floors(db: sqlite3.Connection, cutoff: str) -> dict[str, float]:
    return {
        "list": inproc(lambda: floor_list(db, 50)),
        "list --all": inproc(lambda: floor_list(db, None)),
        "usage": inproc(lambda: floor_usage(db)),
        "prune": inproc(lambda: floor_prune(db, cutoff)),
        "search": inproc(lambda: floor_search(db, "fox")),
        "decode (verify)": inproc(lambda: floor_decode(db), runs=1),
    }


def rm_one(db_path: Path, env: dict[str, str], session_id: str) -> dict[str, float]:
    """`rm` of one session, on a copy of the store (the figures after it see the same store)."""
    import shutil

    copy = db_path.with_name("rm-copy.db")
    shutil.copyfile(db_path, copy)
    try:
        return cli(["rm", session_id, "--yes"], {**env, "AGENTCTL_STORE": f"sqlite://{copy}"}, 1)
    finally:
        for leftover in (copy, copy.with_name("rm-copy.db-wal"), copy.with_name("rm-copy.db-shm")):
            leftover.unlink(missing_ok=True)


def store_reads(url: str, cutoff: str) -> dict[str, float]:
    """The store's own part of each command, in this process (no start-up, no printing)."""
    from datetime import datetime

    from agentctl.store import open_store
    from agentctl.usecases.verify import verify_store

    store = open_store(url)
    when = datetime.fromisoformat(cutoff)

    def prune_choice() -> object:
        return store.session_sizes([s.id for s in store.sessions_before(when)])

    try:
        return {
            "list 50": inproc(lambda: store.select_sessions(None, 50)),
            "forks of one": inproc(lambda: store.forks_of(TARGET)),
            "usage totals": inproc(lambda: store.usage_totals("model", None)),
            "prune choice and sizes": inproc(prune_choice),
            "verify": inproc(lambda: verify_store(store), runs=1),
            "search common, 20": inproc(lambda: store.search("fox", 20)),
            "search rare, 20": inproc(lambda: store.search(RARE, 20)),
        }
    finally:
        store.close()


def index_ratio(db: sqlite3.Connection) -> float | None:
    """The search index's pages (FTS5 tables and the key it is kept by) over the text of the
    messages it covers."""
    try:
        (index,) = db.execute(
            "SELECT sum(pgsize) FROM dbstat"
            " WHERE name LIKE 'message_text%' OR name LIKE 'messages_fts%' OR name = 'messages_seq'"
        ).fetchone()
    except sqlite3.Error:  # no dbstat in this SQLite
        return None
    (text,) = db.execute(
        "SELECT sum(length(CAST(json_extract(body, '$.content') AS BLOB))) FROM messages"
    ).fetchone()
    return round((index or 0) / max(text or 1, 1), 2)


def session_floor(db: sqlite3.Connection, sid: str) -> dict[str, float]:
    rows = (
        "SELECT id, parent, event, from_state, to_state, created_at, detail"
        " FROM checkpoints WHERE session_id = ?"
    )
    return {
        "history (rows)": inproc(lambda: db.execute(rows, (sid,)).fetchall()),
        "decode (verify)": inproc(lambda: floor_decode(db, sid), runs=1),
    }


def copies(url: str, db: sqlite3.Connection, sid: str) -> dict[str, float]:
    """`copy_session` as `fork` calls it (approvals left behind), on a handle that syncs as a
    user's does, and the row-copy floor rolled back and committed, taken in turn (so a spell
    of load falls on all three alike), the best of COPIES each. Each copy is deleted again, so
    the commands after it see the same store."""
    from agentctl.store import open_store

    store = open_store(url)
    copy = store.info(sid).model_copy(update={"id": "copy" + sid[4:]})
    best = {"fork (copy_session)_s": float("inf"), "row copy": 1e9, "row copy (committed)": 1e9}
    try:
        for _ in range(COPIES):
            started = time.perf_counter()
            store.copy_session(store, sid, copy, keep_approvals=False)
            seconds = time.perf_counter() - started
            store.delete_session(copy.id)
            best["fork (copy_session)_s"] = min(best["fork (copy_session)_s"], seconds)
            best["row copy"] = min(best["row copy"], floor_copy(db, sid))
            best["row copy (committed)"] = min(
                best["row copy (committed)"], floor_copy(db, sid, commit=True)
            )
    finally:
        store.close()
    return {k: float(f"{v:.6g}") for k, v in best.items()}


# -- the three axes --------------------------------------------------------------------------


def sessions_axis(root: Path, sizes: Sequence[int], runs: int, env: dict[str, str]) -> Any:
    from agentctl.store import open_store

    db_path = root / "sessions.db"
    url = f"sqlite://{db_path}"
    env = {**env, "AGENTCTL_STORE": url}
    rows = []
    built = 0
    for size in sizes:
        store = fast(open_store(url))
        started = time.perf_counter()
        grow_sessions(store, built, size)
        store.close()
        build_s = time.perf_counter() - started
        built = size
        db = sqlite3.connect(db_path)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cutoff = stamp(BASE + 60 * (size // 5))  # prune chooses the oldest fifth
        row: dict[str, Any] = {"sessions": size, "build_s": round(build_s, 1)}
        row["show"] = cli(["show", TARGET], env, runs)
        row["list"] = cli(["list"], env, runs)
        row["list --all"] = cli(["list", "--all"], env, runs)
        row["usage"] = cli(["usage"], env, runs)
        row["prune --dry-run"] = cli(["prune", "--older-than", cutoff, "--dry-run"], env, runs)
        row["search first"] = cli(["search", "--limit", "20", "fox"], env, 1)
        row["search common"] = cli(["search", "--limit", "20", "fox"], env, runs)
        row["search rare"] = cli(["search", "--limit", "20", RARE], env, runs)
        row["verify"] = cli(["verify"], env, 1)
        row["rm one"] = rm_one(db_path, env, f"s{size // 2:07d}")
        row["in process"] = store_reads(url, cutoff)
        row["floor"] = session_floors(db, cutoff)
        row["search index / text"] = index_ratio(db)
        db.close()
        row["bytes"] = db_path.stat().st_size
        rows.append(row)
        print(f"  sessions {size}:", json.dumps(row))
    keys = [
        *("show", "list", "list --all", "usage", "prune --dry-run", "search common"),
        *("verify", "rm one"),
    ]
    return {"rows": rows, "growth": {k: growth(rows, k) for k in keys}}


def checkpoints_axis(root: Path, sizes: Sequence[int], runs: int, env: dict[str, str]) -> Any:
    from agentctl.store import open_store

    rows = []
    for size in sizes:
        db_path = root / f"long{size}.db"
        url = f"sqlite://{db_path}"
        sid = f"long{size}"
        store = fast(open_store(url))
        started = time.perf_counter()
        long_session(store, sid, size)
        build_s = time.perf_counter() - started
        caches = end_of_run(store, sid)  # this session's caches: the commands below read them
        for extra in range(1, runs):  # more fresh sessions: one figure is at the load's mercy
            path = root / f"caches{size}-{extra}.db"
            other = fast(open_store(f"sqlite://{path}"))
            long_session(other, sid, size)
            caches = [min(a, b) for a, b in zip(caches, end_of_run(other, sid), strict=True)]
            for leftover in path.parent.glob(f"{path.name}*"):
                leftover.unlink()
        store = open_store(url)
        head_s = inproc(lambda: store.head(sid), runs=20)  # noqa: B023
        store.close()
        e = {**env, "AGENTCTL_STORE": url}
        db = sqlite3.connect(db_path)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        copied = copies(url, db, sid)
        row: dict[str, Any] = {"checkpoints": size, "build_s": round(build_s, 1)}
        row["history"] = cli(["history", sid], e, runs)
        row["export"] = cli(["export", sid], e, runs)
        row["verify ID"] = cli(["verify", sid], e, 1)
        row["fork"] = cli(["fork", sid], e, 1)
        row["fork (copy_session)_s"] = copied.pop("fork (copy_session)_s")  # fsynced
        row["end-of-run caches_s"], row["end-of-run caches and close_s"] = caches[:2]
        row["end-of-run caches, CPU_s"] = caches[2]
        row["head_ms"] = round(head_s * 1000, 2)
        row["floor"] = session_floor(db, sid) | copied
        row["fork / row copy (committed)"] = round(
            row["fork (copy_session)_s"] / copied["row copy (committed)"], 2
        )
        db.close()
        rows.append(row)
        print(f"  checkpoints {size}:", json.dumps(row))
    keys = ["history", "export", "verify ID", "fork"]
    out: dict[str, Any] = {"rows": rows, "growth": {k: growth(rows, k) for k in keys}}
    for key in ("end-of-run caches", "end-of-run caches, CPU", "end-of-run caches and close"):
        # Per step (issue 30: "<= 12x per 10x step"), not only largest / smallest.
        steps = [f"{b['checkpoints'] // a['checkpoints']}x: "
                 f"{b[key + '_s'] / max(a[key + '_s'], 1e-6):.2f}x"
                 for a, b in itertools.pairwise(rows)]  # fmt: skip
        if steps:
            out["growth"][key] = ", ".join(steps)
            print(f"  {key}, growth per step:", out["growth"][key])
    return out


def end_of_run(store: Any, sid: str) -> list[float]:
    """What a run's end costs a session just built: both caches kept (wall, CPU), and then
    the store closed as the run's end closes it (wall), when SQLite copies its log into the
    file: a cache of 3 MB (10,000 checkpoints) waits for that, one of 31 MB (100,000) is copied
    by its own commit (the 1,000-page autocheckpoint), so only the figure with the close
    compares the same work at both sizes. The store is closed."""
    from agentctl.llm.openai_chat import prepare
    from agentctl.store.listing import keep_listing
    from agentctl.store.ready import keep_ready, owner_of

    session = store.load(sid)
    wall, cpu = time.perf_counter(), time.process_time()
    keep_ready(store, session, prepare)
    keep_listing(store, sid, owner_of(session.info), session.checkpoint.id)
    kept, kept_cpu = time.perf_counter() - wall, time.process_time() - cpu
    store.close()
    closed = time.perf_counter() - wall
    return [float(f"{x:.6g}") for x in (kept, closed, kept_cpu)]


def branchy_axis(root: Path, steps: int, runs: int, env: dict[str, str]) -> Any:
    from agentctl.store import open_store

    db_path = root / "branchy.db"
    url = f"sqlite://{db_path}"
    store = fast(open_store(url))
    long_session(store, "branchy1", steps, branch_every=25)
    store.close()
    e = {**env, "AGENTCTL_STORE": url}
    row: dict[str, Any] = {"checkpoints": steps, "rollback every": 25}
    row["history"] = cli(["history", "branchy1"], e, runs)
    row["history --graph"] = cli(["history", "--graph", "branchy1"], e, runs)
    row["verify ID"] = cli(["verify", "branchy1"], e, 1)
    print("  branchy:", json.dumps(row))
    return row


def run(quick: bool, axes: Sequence[str] = AXES) -> dict[str, Any]:
    from bench.startup import compiled

    compiled()
    runs = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="agentctl-bench-scale-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "AGENTCTL_HOME": str(root / "home"), "COLUMNS": "120"}
        floor = _python_pass(env)
        print("\nscale (issue 30): python -c pass", floor, "s")
        report: dict[str, Any] = {"python -c pass_s": floor}
        if "sessions" in axes:
            report["sessions"] = sessions_axis(
                root, (200, 2_000) if quick else (1_000, 10_000, 50_000), runs, env
            )
        if "checkpoints" in axes:
            report["checkpoints"] = checkpoints_axis(
                root, (1_000, 5_000) if quick else (1_000, 10_000, 100_000), runs, env
            )
        if "branchy" in axes:
            report["branchy"] = branchy_axis(root, 1_000 if quick else 10_000, runs, env)
        grown = {k: report[k]["growth"] for k in ("sessions", "checkpoints") if k in report}
        print("scale growth (largest / smallest):", json.dumps(grown))
    return report


def _python_pass(env: dict[str, str]) -> float:
    runs = [run_once([sys.executable, "-c", "pass"], env)[0] for _ in range(5)]
    return round(statistics.median(runs), 4)


if __name__ == "__main__":
    chosen = [a for a in AXES if f"--{a}" in sys.argv]  # e.g. --checkpoints: that axis only
    print(json.dumps(run("--quick" in sys.argv, chosen or AXES)))
