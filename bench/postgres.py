"""The PostgreSQL store on one local PostgreSQL, beside LangGraph's PostgresSaver and the floor.

All three subjects run on the same server (a throwaway cluster with fsync on: durable commits)
in this one run, with the workload of the SQLite benchmark (bench/subjects.py): one ~400-char
message and a task-state change per step.

- agentctl-postgres: the real store (`Store.append`: one fenced statement per checkpoint).
- langgraph-postgres: PostgresSaver driven as a graph drives it (`put_writes`, then `put` of a
  checkpoint holding the whole message list), autocommit as its docs prescribe.
- raw-postgres: the floor: one INSERT of the step's new bytes and its COMMIT.

Then the scale figure: aggregate checkpoints per second with 1, 4 and 16 sessions written at
once from separate processes, on PostgreSQL and on SQLite; and `agentctl list` start-up against
PostgreSQL beside one round trip.

And the commit on a fast disk (issue 30 item 6), beside its INSERT floor: bench/pg_commit.py.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.probe import agentctl_request, as_request
from bench.subjects import SESSION, AgentctlSubject, LangGraphSubject, message, task_field

ROLLBACKS = 10


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def table_bytes(url: str, tables: list[str]) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM")  # visibility map and free space settled, as after a while
        total = 0
        for table in tables:
            row = conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()
            total += int(row[0]) if row and row[0] else 0
        return total


class AgentctlPostgres(AgentctlSubject):
    """The store benchmark's agentctl subject, on a PostgreSQL URL."""

    def __init__(self, url: str) -> None:
        super().__init__("postgres", Path(), url)

    def reads(self) -> dict[str, float]:
        from agentctl.store import open_store

        store = open_store(self.url)  # a fresh connection, as another terminal's
        try:
            out = {}
            for key, action in (
                ("load_head", lambda: store.head(SESSION)),
                ("history", lambda: store.history(SESSION)),
                ("conversation", lambda: [m.content for m in store.load(SESSION).messages]),
                ("request", lambda: agentctl_request(store)),
            ):
                out[key] = best_of(action)
            return out
        finally:
            store.close()

    def size(self) -> int:
        return table_bytes(
            self.url, ["agentctl.sessions", "agentctl.checkpoints", "agentctl.messages"]
        )

    def close(self) -> None:
        self.store.close()


class LangGraphPostgres(LangGraphSubject):
    """The store benchmark's LangGraph subject, on PostgresSaver."""

    name = "langgraph-postgres"

    def __init__(self, url: str) -> None:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row

        self.url = url
        self.conn = psycopg.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
        saver = PostgresSaver(self.conn)  # type: ignore[arg-type]
        saver.setup()
        self._begin(saver)

    def reads(self) -> dict[str, float]:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row

        with psycopg.connect(
            self.url, autocommit=True, prepare_threshold=0, row_factory=dict_row
        ) as conn:
            saver = PostgresSaver(conn)  # type: ignore[arg-type]
            config = {"configurable": {"thread_id": SESSION, "checkpoint_ns": ""}}
            return {
                "load_head": best_of(lambda: saver.get_tuple(config)),  # type: ignore[arg-type]
                "history": best_of(
                    lambda: [
                        (t.config, t.parent_config, t.metadata.get("step"))
                        for t in saver.list(config)  # type: ignore[arg-type]
                    ],
                    runs=1,
                ),
                "conversation": best_of(
                    lambda: [
                        m["content"]
                        for m in saver.get_tuple(config).checkpoint["channel_values"]["messages"]  # type: ignore[arg-type,union-attr]
                    ]
                ),
                "request": best_of(
                    lambda: as_request(
                        saver.get_tuple(config).checkpoint["channel_values"]["messages"]  # type: ignore[arg-type,union-attr]
                    )
                ),
            }

    def size(self) -> int:
        return table_bytes(
            self.url,
            ["checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations"],
        )

    def close(self) -> None:
        self.conn.close()


class RawPostgres:
    name = "raw-postgres"

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("CREATE TABLE log (id bigserial PRIMARY KEY, body text NOT NULL)")

    def commit(self, step: int) -> None:
        body = json.dumps({"message": message(step), "task": task_field(step)})
        self.conn.execute("INSERT INTO log (body) VALUES (%s)", (body,))  # autocommit: COMMIT

    def rollback(self, to_step: int) -> None:
        self.conn.execute("INSERT INTO log (body) VALUES (%s)", (json.dumps({"to": to_step}),))

    def reads(self) -> dict[str, float]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            return {
                "load_head": best_of(
                    lambda: conn.execute("SELECT body FROM log ORDER BY id DESC LIMIT 1").fetchone()
                ),
                "history": best_of(lambda: conn.execute("SELECT id FROM log").fetchall()),
                "conversation": best_of(
                    lambda: [json.loads(b) for (b,) in conn.execute("SELECT body FROM log")]
                ),
                "request": best_of(
                    lambda: as_request(
                        [json.loads(b)["message"] for (b,) in conn.execute("SELECT body FROM log")]
                    )
                ),
            }

    def size(self) -> int:
        return table_bytes(self.url, ["log"])

    def close(self) -> None:
        self.conn.close()


def best_of(action: Any, runs: int = 5) -> float:
    """The fastest of a few runs: a warm connection's cost, noise taken out."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def run_subject(kind: type, url: str, steps: int) -> dict[str, Any]:
    subject = kind(url)
    commits = []
    for step in range(1, steps + 1):
        started = time.perf_counter()
        subject.commit(step)
        commits.append(time.perf_counter() - started)
    size = subject.size()
    if hasattr(subject, "stop"):
        subject.stop()  # what the end of a run leaves (agentctl: ready conversation, listing)
    reads = subject.reads()
    for _ in range(ROLLBACKS):
        subject.rollback(steps // 2)
    subject.close()
    early = commits[5:15] if steps >= 15 else commits
    return {
        "subject": subject.name,
        "steps": steps,
        "commit_median_ms": ms(statistics.median(commits)),
        "commit_step10_ms": ms(statistics.median(early)),
        "commit_last_ms": ms(statistics.median(commits[-10:])),
        "bytes": size,
        "load_head_ms": ms(reads["load_head"]),
        "history_ms": ms(reads["history"]),
        "conversation_ms": ms(reads["conversation"]),
        "request_ms": ms(reads["request"]),
    }


def writer(url: str, session: str, steps: int) -> None:
    """One process writing one session (python -m bench.postgres write URL SESSION STEPS)."""
    target = AgentctlSubject("any", Path(), url, session)
    print("ready", flush=True)
    sys.stdin.readline()  # all start together
    started = time.perf_counter()
    for step in range(1, steps + 1):
        target.commit(step)
    print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)
    target.close()


def scale(url_for: Any, steps: int, counts: tuple[int, ...]) -> dict[str, float]:
    """Aggregate checkpoints per second with `n` sessions written at once by `n` processes."""
    out = {}
    for n in counts:
        url = url_for(n)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.postgres", "write", url, f"w{n}s{i}", str(steps)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(n)
        ]
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        started = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            p.communicate(timeout=600)
        wall = time.perf_counter() - started
        out[f"{n} sessions"] = round(n * steps / wall)
    return out


def list_startup(url: str, runs: int) -> dict[str, float]:
    """`agentctl list` against PostgreSQL, beside one round trip and `python -c pass`."""
    import psycopg

    from bench.startup import median_wall

    env = {**os.environ, "AGENTCTL_STORE": url}
    script = Path(sys.executable).parent / "agentctl"
    agentctl = [str(script)] if script.exists() else [sys.executable, "-m", "agentctl"]
    with psycopg.connect(url, autocommit=True) as conn:
        round_trip = best_of(lambda: conn.execute("SELECT 1").fetchone(), runs=20)
        connect = best_of(lambda: psycopg.connect(url).close(), runs=5)
    return {
        "python -c pass": median_wall([sys.executable, "-c", "pass"], env, runs),
        "agentctl list (postgres)": median_wall([*agentctl, "list"], env, runs),
        "one round trip": round(round_trip, 5),
        "connect": round(connect, 4),
    }


def run(quick: bool) -> dict[str, Any]:
    from agentctl.testing.postgres import ThrowawayPostgres, Unavailable

    try:
        import langgraph.checkpoint.postgres  # noqa: F401
    except ImportError:
        return {"skipped": 'the peer is missing: pip install -e ".[bench]"'}
    try:
        server = ThrowawayPostgres(durable=True)
        server.start()
    except Unavailable as exc:
        return {"skipped": f"no PostgreSQL: {exc}"}
    report: dict[str, Any] = {"runs": []}
    try:
        for steps in [100] if quick else [100, 1000]:
            rows = []
            for kind in (RawPostgres, AgentctlPostgres, LangGraphPostgres):
                url = server.database(f"b_{kind.__name__.lower()}_{steps}")
                rows.append(run_subject(kind, url, steps))
            by = {r["subject"]: r for r in rows}
            ours, raw, peer = by["agentctl-postgres"], by["raw-postgres"], by["langgraph-postgres"]
            ratios = {
                "commit_vs_floor": round(ours["commit_median_ms"] / raw["commit_median_ms"], 2),
                "commit_growth": round(ours["commit_last_ms"] / ours["commit_step10_ms"], 2),
                "storage_vs_raw": round(ours["bytes"] / raw["bytes"], 2),
                "history_speedup_vs_peer": round(peer["history_ms"] / ours["history_ms"], 1),
                "history_vs_raw": round(ours["history_ms"] / raw["history_ms"], 2),
                "load_head_speedup_vs_peer": round(peer["load_head_ms"] / ours["load_head_ms"], 1),
                "peer_storage_vs_raw": round(peer["bytes"] / raw["bytes"], 1),
                "request_vs_peer_conversation": round(
                    ours["request_ms"] / peer["conversation_ms"], 2
                ),
            }
            print(f"\nPostgreSQL, N = {steps} steps (fsync on, one local server)\n")
            for r in rows:
                print("  ", json.dumps(r))
            print("ratios:", ", ".join(f"{k} = {v}" for k, v in ratios.items()))
            report["runs"].append({"steps": steps, "rows": rows, "ratios": ratios})
        steps = 50 if quick else 200
        counts = (1, 4) if quick else (1, 4, 16)
        databases = {n: server.database(f"scale_{n}") for n in counts}
        report["scale_postgres"] = scale(lambda n: databases[n], steps, counts)
        # The SQLite side's files go with the run (they were left in /tmp after every run).
        with tempfile.TemporaryDirectory(prefix="agentctl-bench-sqlite-") as sqlite_root:
            root = Path(sqlite_root)
            report["scale_sqlite"] = scale(lambda n: f"sqlite://{root / f's{n}.db'}", steps, counts)
        print("\ncheckpoints per second, n sessions at once (separate processes):")
        print("   postgres:", json.dumps(report["scale_postgres"]))
        print("   sqlite:  ", json.dumps(report["scale_sqlite"]))
        list_url = server.database("startup")
        from agentctl.store import open_store

        open_store(list_url).close()
        report["list_startup"] = list_startup(list_url, 5 if quick else 11)
        print("agentctl list against PostgreSQL (s):", json.dumps(report["list_startup"]))
    finally:
        server.stop()
    from bench.pg_commit import fast_disk

    report["fast_disk"] = fast_disk(quick)
    return report


if __name__ == "__main__":
    if sys.argv[1:2] == ["write"]:
        writer(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif "--fast-disk" in sys.argv:
        from bench.pg_commit import fast_disk

        fast_disk("--quick" in sys.argv)
    else:
        print(json.dumps(run("--quick" in sys.argv)))
