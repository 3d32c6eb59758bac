"""agentctl's queue against PostgreSQL job-queue libraries (issue 28: "use such a library if it
fits agentctl's lease and states better than a claim statement on agentctl's tables. Measure
both, decide"): `python -m bench.queue_engines [--quick]`, and part of `python -m bench`.

The same throwaway PostgreSQL (fsync on), a database per engine, K worker processes per engine,
each claiming one job at a time and listening for NOTIFY (every engine's default wake-up):

- agentctl: the real `Worker` dispatcher and LISTEN thread (usecases/worker.py), whose claim
  is the fenced lease (store/pg_queue.py); a claimed session is finished at once instead of
  run. Jobs are sessions made runnable with `pg_queue.enqueue`.
- procrastinate (psycopg 3, like agentctl): `run_worker_async(concurrency=1)`, a no-op async
  task.
- PgQueuer, when installed: `QueueManager.run()` on a psycopg async connection, its default
  batch of 10 per dequeue, a no-op entrypoint.

Figures:
- claim latency: a job queued while the workers wait, to a worker holding it (agentctl: the
  claim statement returned; the libraries: their task body began), from just before the
  enqueue call, both clocks this machine's; the median of --samples jobs queued 0.3 s apart;
- claims per second: N jobs queued in one transaction while the K workers wait, to the last
  one claimed (each job also finished: agentctl's finish, procrastinate's finish_job,
  PgQueuer's buffered log);
- idle cost: every statement each engine's database ran (pg_stat_statements) while its K
  workers waited for --idle seconds with nothing queued, per worker per second.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ENGINES = ("agentctl", "procrastinate", "pgqueuer")
QUEUE = "bench"


def available(engine: str) -> bool:
    import importlib.util

    return engine == "agentctl" or importlib.util.find_spec(engine) is not None


def say_claimed(key: str) -> None:
    print(f"claimed {key} {time.time()!r}", flush=True)


# -- the worker side: `python -m bench.queue_engines worker ENGINE URL` ------------------------


def agentctl_worker(url: str) -> None:
    from agentctl.config import Settings
    from agentctl.store import pg_queue
    from agentctl.usecases.worker import Worker, WorkerOptions

    class ClaimOnly(Worker):
        """The real dispatcher, listener and claim; a claimed session is finished at once."""

        def _start(self, claim: Any, lease: Any) -> None:
            say_claimed(claim.session_id)
            self.claimed += 1
            sid = claim.session_id
            self._db(lambda c: pg_queue.finish(c, sid, lease.token, "done"))
            self._slots.release()
            self._wake.set()

    worker = ClaimOnly(Settings.load(store=url), WorkerOptions(queue=QUEUE), lambda _line: None)
    signal.signal(signal.SIGTERM, lambda _s, _f: worker.stop())
    print("ready", flush=True)
    worker.run()


async def procrastinate_worker(url: str) -> None:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="bench", queue=QUEUE)
    async def job(key: str) -> None:
        say_claimed(key)

    async with app.open_async():
        print("ready", flush=True)
        await app.run_worker_async(queues=[QUEUE], concurrency=1, wait=True)


async def pgqueuer_worker(url: str) -> None:
    import asyncio

    import psycopg
    from pgqueuer.db import PsycopgDriver
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries

    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    manager = QueueManager(Queries(PsycopgDriver(conn)))

    @manager.entrypoint("bench")
    async def job(j: Any) -> None:
        say_claimed(j.payload.decode())

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, manager.shutdown.set)
    print("ready", flush=True)
    await manager.run()


def worker_main(engine: str, url: str) -> None:
    import asyncio
    import logging

    logging.disable(logging.CRITICAL)  # the libraries log every job
    if engine == "agentctl":
        agentctl_worker(url)
    elif engine == "procrastinate":
        asyncio.run(procrastinate_worker(url))
    else:
        asyncio.run(pgqueuer_worker(url))


# -- the queueing side (this process) ----------------------------------------------------------


class Enqueuer:
    """Makes jobs runnable on one engine's database: one at a time, or a batch in one
    transaction."""

    def __init__(self, engine: str, url: str, keys: int) -> None:
        self.engine = engine
        self.url = url
        self.keys = [f"j{n:06d}" for n in range(keys)]
        self._next = 0
        if engine == "agentctl":
            self._setup_agentctl()
        elif engine == "procrastinate":
            self._setup_procrastinate()
        else:
            self._setup_pgqueuer()

    def take(self, count: int) -> list[str]:
        keys = self.keys[self._next : self._next + count]
        self._next += count
        return keys

    def _setup_agentctl(self) -> None:
        """Sessions to queue, made beforehand (untimed): a job is making one runnable."""
        from agentctl.domain.lifecycle import CheckpointKind, State
        from agentctl.domain.session import SessionInfo, Task, TaskSpec, Usage
        from agentctl.store import open_store, pg_queue
        from agentctl.store.base import CheckpointDraft

        self.store = open_store(self.url, create=True)
        first = CheckpointDraft(
            None,
            CheckpointKind.NEW_TASK,
            State.IDLE,
            State.PLANNING,
            "2026-01-01",
            Task(goal="b"),
            Usage(),
        )
        for key in self.keys:
            info = SessionInfo(id=key, spec=TaskSpec(goal="b"), model="b", created_at="t")
            self.store.create_session(info, first)
        self._pg_queue = pg_queue

    def _setup_procrastinate(self) -> None:
        import procrastinate

        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=self.url))

        @self.app.task(name="bench", queue=QUEUE)
        def job(key: str) -> None:  # only deferred from here
            pass

        self.task = job
        self._opened = self.app.open()
        self._opened.__enter__()
        self.app.schema_manager.apply_schema()

    def _setup_pgqueuer(self) -> None:
        import asyncio

        import psycopg
        from pgqueuer.db import PsycopgDriver, SyncPsycopgDriver
        from pgqueuer.queries import Queries, SyncQueries

        async def install() -> None:
            async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                await Queries(PsycopgDriver(conn)).install()

        asyncio.run(install())
        self.conn = psycopg.connect(self.url, autocommit=True)
        self.queries = SyncQueries(SyncPsycopgDriver(self.conn))

    def enqueue(self, keys: list[str]) -> None:
        """`keys` made runnable in one transaction."""
        if self.engine == "agentctl":
            pq = self._pg_queue

            def work(conn: Any) -> None:
                with conn.transaction():
                    for key in keys:
                        pq.enqueue(conn, key, queue=QUEUE)

            self.store.with_connection(work)  # type: ignore[attr-defined]
        elif self.engine == "procrastinate":
            if len(keys) == 1:
                self.task.defer(key=keys[0])
            else:
                self.task.batch_defer(*({"key": k} for k in keys))
        elif len(keys) == 1:
            self.queries.enqueue("bench", keys[0].encode())
        else:
            self.queries.enqueue(["bench"] * len(keys), [k.encode() for k in keys], [0] * len(keys))

    def close(self) -> None:
        if self.engine == "agentctl":
            self.store.close()
        elif self.engine == "procrastinate":
            self._opened.__exit__(None, None, None)
        else:
            self.conn.close()


class Workers:
    """K worker processes of one engine; what they claimed arrives on `claims` (key, time)."""

    def __init__(self, engine: str, url: str, count: int, home: Path) -> None:
        self.claims: queue.Queue[tuple[str, float]] = queue.Queue()
        self._ready: queue.Queue[bool] = queue.Queue()
        env = {
            **os.environ,
            "AGENTCTL_HOME": str(home / engine),
            "AGENTCTL_WORKER_DIR": str(home / f"{engine}-scratch"),
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.queue_engines", "worker", engine, url],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                text=True,
                env=env,
            )
            for _ in range(count)
        ]
        for proc in self.procs:
            threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ready"):
                self._ready.put(True)
            elif line.startswith("claimed "):
                _, key, at = line.split()
                self.claims.put((key, float(at)))

    def wait_ready(self, limit: float = 120.0) -> None:
        for _ in self.procs:
            self._ready.get(timeout=limit)

    def claimed(self, count: int, limit: float = 300.0) -> list[tuple[str, float]]:
        deadline = time.monotonic() + limit
        out = []
        while len(out) < count:
            out.append(self.claims.get(timeout=max(0.01, deadline - time.monotonic())))
        return out

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def statements(admin_url: str, databases: dict[str, str]) -> dict[str, int]:
    """Statements each database ran since the last reset (pg_stat_statements)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT d.datname, coalesce(sum(s.calls), 0) FROM pg_database d"
            " LEFT JOIN pg_stat_statements s ON s.dbid = d.oid GROUP BY d.datname"
        ).fetchall()
    by_name = {name: int(calls) for name, calls in rows}
    return {engine: by_name.get(db, 0) for engine, db in databases.items()}


def reset_statements(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def run(
    quick: bool, samples: int = 20, jobs: int = 1000, claimers: int = 4, idle: float = 60.0
) -> dict[str, Any]:
    from agentctl.testing.postgres import ThrowawayPostgres, Unavailable

    if quick:
        samples, jobs, claimers, idle = 5, 200, 2, 5.0
    engines = [e for e in ENGINES if available(e)]
    import logging

    logging.getLogger("procrastinate").setLevel(logging.ERROR)  # its advice on module layout
    begun = time.monotonic()
    try:
        server = ThrowawayPostgres(
            durable=True, settings=("shared_preload_libraries=pg_stat_statements",)
        )
        server.start()
    except Unavailable as exc:
        return {"skipped": f"no PostgreSQL: {exc}"}
    import psycopg

    report: dict[str, Any] = {
        "engines": engines,
        "workers_per_engine": claimers,
        "missing": [e for e in ENGINES if e not in engines],
    }
    started: list[Workers] = []
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        databases = {e: f"q_{e}" for e in engines}
        urls = {e: server.database(databases[e]) for e in engines}
        enqueuers = {e: Enqueuer(e, urls[e], samples + jobs) for e in engines}
        with tempfile.TemporaryDirectory(prefix="agentctl-bench-queues-") as tmp:
            workers = {}
            for e in engines:
                workers[e] = Workers(e, urls[e], claimers, Path(tmp))
                started.append(workers[e])
            for w in workers.values():
                w.wait_ready()
            time.sleep(2.0)  # listening, the model client preloaded: idle from here on
            reset_statements(server.url)
            time.sleep(idle)
            idle_statements = statements(server.url, databases)
            for e in engines:
                latencies = []
                for key in enqueuers[e].take(samples):
                    time.sleep(0.3)
                    before = time.time()
                    enqueuers[e].enqueue([key])
                    ((got, at),) = workers[e].claimed(1)
                    assert got == key, (got, key)
                    latencies.append(at - before)
                keys = enqueuers[e].take(jobs)
                time.sleep(0.3)
                before = time.time()
                enqueuers[e].enqueue(keys)
                committed = time.time()
                claims = workers[e].claimed(jobs)
                assert sorted(k for k, _ in claims) == sorted(keys), e
                last = max(at for _, at in claims)
                report[e] = {
                    "claim_latency_median_ms": round(statistics.median(latencies) * 1000, 2),
                    "claim_latency_max_ms": round(max(latencies) * 1000, 2),
                    "claims_per_s": round(jobs / (last - committed), 1),
                    "enqueue_batch_ms": round((committed - before) * 1000, 1),
                    "idle_statements_per_worker_per_s": round(
                        idle_statements[e] / claimers / idle, 3
                    ),
                }
                print(f"{e}: {json.dumps(report[e])}", flush=True)
        report["samples"], report["jobs"], report["idle_s"] = samples, jobs, idle
        report["took_s"] = round(time.monotonic() - begun, 1)
        for enqueuer in enqueuers.values():
            enqueuer.close()
    finally:
        for w in started:
            w.stop()
        server.stop()
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--quick", action="store_true", help="5 samples, 200 jobs, 2 workers each, 5 s idle"
    )
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--claimers", type=int, default=4)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args()
    print(
        json.dumps(run(args.quick, args.samples, args.jobs, args.claimers, args.idle)),
        flush=True,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker_main(sys.argv[2], sys.argv[3])
    else:
        main()
