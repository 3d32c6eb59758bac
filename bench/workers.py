"""Workers on one local PostgreSQL (issue 28): `python -m bench.workers [--quick]`.

- Throughput: the same short scripted sessions (a plan, then a step and finish: two model
  replies, four checkpoints) run one after another in one process (`run`, no queue), then
  queued and run by one worker with 1, 4 and 16 slots; sessions per second, and the speed-up
  over one after another.
- Claim latency: a session made runnable while a worker is idle, to its claim (the queue
  row's claimed_at - enqueued_at, both by the server's clock) and to its first model reply
  (the checkpoint's time), with LISTEN/NOTIFY and with polling alone (AGENTCTL_WORKER_LISTEN=0,
  the default 5 s poll); the median of --samples sessions, queued one at a time.
- Idle cost: 10 idle workers for --idle seconds: every statement the server ran (log_statement
  = all, counted in its log), per worker per second.

Everything runs on a throwaway cluster with fsync on; workers are real `agentctl worker`
processes with `--model scripted`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TASK = """goal = "A short task"
[[script]]
[[script.tool_calls]]
name = "submit_plan"
arguments = { steps = ["Do it"] }
[[script]]
[[script.tool_calls]]
name = "complete_step"
arguments = { summary = "done" }
[[script.tool_calls]]
name = "finish"
arguments = { result = "finished" }
"""


def sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params or None)  # type: ignore[call-overload]
        return cur.fetchall() if cur.description else []


def queue_many(url: str, task: Path, work: Path, count: int) -> list[str]:
    from agentctl.config import Settings
    from agentctl.usecases import runs as service

    settings = Settings.load(store=url)
    spec = service.read_task(str(task))
    return [
        service.start_session(
            settings,
            spec,
            max_turns=None,
            ask=None,
            on_event=lambda _event: None,
            workspace=work,
            detach=service.Detach(),
        ).session.info.id
        for _ in range(count)
    ]


def one_after_another(url: str, task: Path, work: Path, count: int) -> float:
    from agentctl.config import Settings
    from agentctl.usecases import runs as service

    settings = Settings.load(store=url)
    spec = service.read_task(str(task))
    started = time.perf_counter()
    for _ in range(count):
        service.start_session(
            settings, spec, max_turns=None, ask=None, on_event=lambda _e: None, workspace=work
        )
    return time.perf_counter() - started


def start_worker(url: str, root: Path, name: str, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentctl", "worker", "--model", "scripted", *args],
        env={
            **os.environ,
            "AGENTCTL_STORE": url,
            "AGENTCTL_HOME": str(root / f"home-{name}"),
            "AGENTCTL_HOSTNAME": name,
            "AGENTCTL_WORKER_DIR": str(root / f"scratch-{name}"),
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(timeout=120)


def wait_until(check: Any, limit: float = 600.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark did not finish in time")
        time.sleep(0.01)


def throughput(server: Any, root: Path, count: int, slots: list[int]) -> dict[str, Any]:
    task = root / "task.toml"
    task.write_text(TASK)
    work = root / "work"
    work.mkdir(exist_ok=True)
    url = server.database("serial")
    serial = one_after_another(url, task, work, count)
    out: dict[str, Any] = {"sessions": count, "one_after_another_s": round(serial, 2)}
    for n in slots:
        url = server.database(f"slots{n}")
        queue_many(url, task, work, count)
        worker = start_worker(url, root, f"t{n}", "--concurrency", str(n))
        done = "SELECT count(*) FROM agentctl.queue WHERE status = 'done'"
        first = "SELECT count(*) FROM agentctl.queue WHERE status <> 'runnable'"
        wait_until(lambda u=url, q=first: sql(u, q)[0][0] > 0)  # up: the clock starts
        started = time.perf_counter()
        wait_until(lambda u=url, q=done: sql(u, q)[0][0] == count)
        took = time.perf_counter() - started
        stop(worker)
        out[f"slots_{n}_s"] = round(took, 2)
        out[f"slots_{n}_per_s"] = round(count / took, 1)
        out[f"slots_{n}_speedup"] = round(serial / took, 2)
    return out


def latency(server: Any, root: Path, samples: int, listen: bool) -> dict[str, Any]:
    task = root / "task.toml"
    task.write_text(TASK)
    work = root / "work"
    work.mkdir(exist_ok=True)
    url = server.database("listen" if listen else "poll")
    queue_many(url, task, work, 1)  # the worker's first session: warms it up
    worker = start_worker(
        url, root, "l" if listen else "p", AGENTCTL_WORKER_LISTEN=str(int(listen))
    )
    done = "SELECT count(*) FROM agentctl.queue WHERE status = 'done'"
    wait_until(lambda: sql(url, done)[0][0] == 1)
    claims, replies = [], []
    for n in range(samples):
        time.sleep(0.3)  # idle again: waiting on its LISTEN (or its poll)
        (sid,) = queue_many(url, task, work, 1)
        wait_until(lambda k=n + 2: sql(url, done)[0][0] == k)
        row = sql(
            url,
            "SELECT extract(epoch FROM q.claimed_at - q.enqueued_at),"
            " (SELECT created_at FROM agentctl.checkpoints c WHERE c.session_id = q.session_id"
            "  AND c.event = 'model_reply' ORDER BY id LIMIT 1), q.enqueued_at"
            " FROM agentctl.queue q WHERE session_id = %s",
            sid,
        )[0]
        from datetime import datetime

        claims.append(float(row[0]))
        replies.append((datetime.fromisoformat(row[1]) - row[2]).total_seconds())
    stop(worker)
    return {
        "mode": "LISTEN/NOTIFY" if listen else "polling (5 s)",
        "samples": samples,
        "claim_median_ms": round(statistics.median(claims) * 1000, 1),
        "claim_max_ms": round(max(claims) * 1000, 1),
        "first_reply_median_ms": round(statistics.median(replies) * 1000, 1),
    }


def statements_logged(log: Path) -> int:
    """Statements in the server's log: simple ones (`statement: `) and prepared ones, which
    psycopg uses after a few runs of the same text (`execute NAME: `)."""
    import re

    return len(re.findall(r"LOG:  (?:statement|execute [^:]*): ", log.read_text(errors="replace")))


def idle_cost(server: Any, root: Path, workers: int, seconds: float) -> dict[str, Any]:
    url = server.database("idle")
    from agentctl.store import open_store

    open_store(url).close()
    procs = [start_worker(url, root, f"i{n}") for n in range(workers)]
    time.sleep(8)  # started and settled: idle from here on
    log = Path(server.root) / "server.log"
    sql(url, "ALTER SYSTEM SET log_statement = 'all'")
    sql(url, "SELECT pg_reload_conf()")
    time.sleep(1)
    before = statements_logged(log)
    time.sleep(seconds)
    after = statements_logged(log)
    sql(url, "ALTER SYSTEM RESET log_statement")
    sql(url, "SELECT pg_reload_conf()")
    for proc in procs:
        stop(proc)
    statements = after - before
    return {
        "workers": workers,
        "seconds": seconds,
        "statements": statements,
        "per_worker_per_s": round(statements / workers / seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="50 sessions, 5 samples, 20 s idle")
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--only", choices=("throughput", "latency", "idle"))
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.samples, args.idle = 50, 5, 20.0
    from agentctl.testing.postgres import ThrowawayPostgres

    server = ThrowawayPostgres(durable=True)
    server.start()
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="agentctl-bench-workers-") as tmp:
            root = Path(tmp)
            if args.only in (None, "throughput"):
                results["throughput"] = throughput(server, root, args.sessions, [1, 4, 16])
                print(json.dumps(results["throughput"]), flush=True)
            if args.only in (None, "latency"):
                results["latency"] = [
                    latency(server, root, args.samples, listen) for listen in (True, False)
                ]
                print(json.dumps(results["latency"]), flush=True)
            if args.only in (None, "idle"):
                results["idle"] = idle_cost(server, root, 10, args.idle)
                print(json.dumps(results["idle"]), flush=True)
    finally:
        server.stop()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
