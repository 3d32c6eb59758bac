"""Run the store benchmarks: `python -m bench [--quick]` (needs `pip install -e ".[bench]"`).

For each session length N, every subject gets the same workload in this one run (see
bench/subjects.py); then the figures and their ratios are printed as a table and as one JSON
line. --quick (N = 100, for CI) takes well under a minute; the full run does N = 100, 1,000 and
10,000, with the peer capped at --peer-max steps because its database grows quadratically.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.startup import measure_startup
from bench.subjects import make, path_of

SUBJECTS = ("raw-sqlite", "agentctl-sqlite", "agentctl-jsonl", "langgraph-sqlite")
ROLLBACKS = 10


def settle(path: Path) -> None:
    """Fold the WAL into the database file, so its size is what the data takes."""
    if path.is_file():
        db = sqlite3.connect(path)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def run_subject(name: str, steps: int, root: Path, probes: int = 5) -> dict[str, Any]:
    subject = make(name, root)
    commits = []
    for step in range(1, steps + 1):
        started = time.perf_counter()
        subject.commit(step)
        commits.append(time.perf_counter() - started)
    path = path_of(name, root)
    settle(path)
    size = subject.size()
    stop_s = subject.stop()
    settle(path)
    stopped_size = subject.size()
    # Each read once per fresh process, the median of `probes` processes: one process's figure
    # moves by a fifth from run to run on this shared machine.
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-m", "bench.probe", name, str(path)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(probes)
    ]
    reads = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    rollbacks = []
    for _ in range(ROLLBACKS):
        started = time.perf_counter()
        subject.rollback(steps // 2)
        rollbacks.append(time.perf_counter() - started)
    settle(path)
    rollback_bytes = (subject.size() - stopped_size) / ROLLBACKS
    subject.close()
    ordered = sorted(commits)
    early = commits[5:15] if steps >= 15 else commits
    return {
        "subject": name,
        "steps": steps,
        "commit_median_ms": ms(statistics.median(commits)),
        "commit_p99_ms": ms(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]),
        "commit_step10_ms": ms(statistics.median(early)),
        "commit_last_ms": ms(statistics.median(commits[-10:])),
        "bytes": size,
        "load_head_ms": ms(reads["load_head"]),
        "history_ms": ms(reads["history"]),
        "conversation_ms": ms(reads["conversation"]),
        "request_ms": ms(reads["request"]),
        "stop_ms": ms(stop_s),
        "ready_bytes": stopped_size - size,
        "rollback_ms": ms(statistics.median(rollbacks)),
        "rollback_bytes": round(rollback_bytes),
    }


def verify_scale(root: Path, steps: int) -> dict[str, Any]:
    """`verify` of one long session (target: 10,000 checkpoints in <= 2 s on both file
    backends) and the JSON-lines head load against SQLite's (target: within 3x)."""
    from agentctl.usecases.verify import verify_store
    from bench.subjects import SESSION, AgentctlSubject

    out: dict[str, Any] = {"steps": steps}
    for kind in ("sqlite", "jsonl"):
        subject = AgentctlSubject(kind, root / kind)
        for step in range(1, steps + 1):
            subject.commit(step)
        started = time.perf_counter()
        _, reports = verify_store(subject.store, [SESSION])
        out[f"{kind}_verify_s"] = round(time.perf_counter() - started, 3)
        assert not reports[0].problems, reports[0].problems
        started = time.perf_counter()
        for _ in range(20):
            subject.store.head(SESSION)
        out[f"{kind}_head_ms"] = ms((time.perf_counter() - started) / 20)
        subject.close()
    out["jsonl_head_vs_sqlite"] = round(out["jsonl_head_ms"] / max(out["sqlite_head_ms"], 1e-6), 2)
    print(f"\nverify of a {steps}-checkpoint session and head load:", json.dumps(out))
    return out


def ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by = {r["subject"]: r for r in rows}
    ours, raw, peer = by.get("agentctl-sqlite"), by.get("raw-sqlite"), by.get("langgraph-sqlite")
    out: dict[str, Any] = {}
    if ours and raw:
        out["storage_vs_raw"] = round(ours["bytes"] / raw["bytes"], 2)
        out["commit_vs_raw"] = round(ours["commit_median_ms"] / raw["commit_median_ms"], 2)
        out["commit_growth"] = round(ours["commit_last_ms"] / ours["commit_step10_ms"], 2)
        # Issue 15 part 4: `history` against the raw listing of ids.
        out["history_vs_raw"] = round(ours["history_ms"] / raw["history_ms"], 2)
    if ours and peer:
        out["peer_storage_vs_raw"] = round(peer["bytes"] / raw["bytes"], 1) if raw else None
        out["history_speedup_vs_peer"] = round(peer["history_ms"] / ours["history_ms"], 1)
        out["load_head_speedup_vs_peer"] = round(peer["load_head_ms"] / ours["load_head_ms"], 1)
        out["peer_commit_growth"] = round(peer["commit_last_ms"] / peer["commit_step10_ms"], 2)
        # Issue 15: our conversation ready for the next request against the peer's load alone.
        out["request_vs_peer_conversation"] = round(ours["request_ms"] / peer["conversation_ms"], 2)
    jsonl = by.get("agentctl-jsonl")
    if ours and jsonl:
        out["jsonl_commit_vs_sqlite"] = round(
            jsonl["commit_median_ms"] / ours["commit_median_ms"], 2
        )
        out["jsonl_load_vs_sqlite"] = round(jsonl["load_head_ms"] / ours["load_head_ms"], 2)
        out["jsonl_request_vs_sqlite"] = round(jsonl["request_ms"] / ours["request_ms"], 2)
    return out


COLUMNS = [
    ("subject", "subject", "{}"),
    ("commit_median_ms", "commit ms (median)", "{:.2f}"),
    ("commit_p99_ms", "p99", "{:.2f}"),
    ("commit_step10_ms", "@10", "{:.2f}"),
    ("commit_last_ms", "@last", "{:.2f}"),
    ("bytes", "size", "{}"),
    ("load_head_ms", "load head ms", "{:.2f}"),
    ("history_ms", "history ms", "{:.2f}"),
    ("conversation_ms", "conversation ms", "{:.2f}"),
    ("request_ms", "request ms", "{:.2f}"),
    ("stop_ms", "stop ms", "{:.2f}"),
    ("ready_bytes", "ready copy", "{}"),
    ("rollback_ms", "rollback ms", "{:.2f}"),
    ("rollback_bytes", "rollback bytes", "{}"),
]


def human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def table(rows: list[dict[str, Any]]) -> str:
    header = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [
            human(row[k]) if k in ("bytes", "ready_bytes") else fmt.format(row[k])
            for k, _, fmt in COLUMNS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scale_section(quick: bool) -> dict[str, Any]:
    """bench/scale.py's figures, and the per-turn loop of a 200-turn session (bench/turn.py)."""
    from bench import longsessions, scale, turn

    out = dict(scale.run(quick))
    out["per-turn loop"] = turn.run(quick)
    # history's first rows on a terminal, resume of a very long session, flat-folder snapshots
    out["long sessions"] = longsessions.run(quick)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="N = 100 only, fewer start-up runs (CI)"
    )
    parser.add_argument("--steps", default="100,1000,10000")
    parser.add_argument("--peer-max", type=int, default=1000, help="largest N for the peer")
    parser.add_argument("--no-startup", action="store_true")
    parser.add_argument("--no-postgres", action="store_true", help="skip bench/postgres.py")
    parser.add_argument(
        "--only", choices=("scale",), help="run this section alone (bench/scale.py: issue 30)"
    )
    args = parser.parse_args()
    if args.only == "scale":
        print("\n" + json.dumps({"quick": args.quick, "scale": scale_section(args.quick)}))
        return
    try:
        import langgraph.checkpoint.sqlite  # noqa: F401  (the peer every run compares with)
    except ImportError:
        sys.exit('python -m bench needs the peer: pip install -e ".[bench]"')
    sizes = [100] if args.quick else [int(n) for n in args.steps.split(",")]
    report: dict[str, Any] = {"quick": args.quick, "runs": []}
    with tempfile.TemporaryDirectory(prefix="agentctl-bench-") as tmp:
        for steps in sizes:
            rows = []
            for name in SUBJECTS:
                if name == "langgraph-sqlite" and steps > args.peer_max:
                    continue
                place = Path(tmp) / f"{name}-{steps}"
                rows.append(run_subject(name, steps, place, probes=1 if args.quick else 5))
            print(f"\nN = {steps} steps (WAL, synchronous=FULL on every SQLite subject)\n")
            print(table(rows))
            summary = ratios(rows)
            print("\nratios:", ", ".join(f"{k} = {v}" for k, v in summary.items()))
            report["runs"].append({"steps": steps, "rows": rows, "ratios": summary})
        report["verify"] = verify_scale(Path(tmp) / "verify", 1000 if args.quick else 10_000)
        from bench import render, sandbox, sessions, snapshots, ttfr

        report["snapshots"] = snapshots.run(args.quick)
        report["sandbox"] = sandbox.run(args.quick)
        report["sessions"] = sessions.run(args.quick)
        report["time_to_first_request"] = ttfr.run(args.quick)
        report["run_view"] = render.run(args.quick)
        report["scale"] = scale_section(args.quick)
        if not args.no_postgres:
            from bench import postgres

            report["postgres"] = postgres.run(args.quick)
            from bench import queue_engines

            print("\nagentctl's queue against procrastinate and PgQueuer (bench/queue_engines.py):")
            report["queue_engines"] = queue_engines.run(args.quick)
        if not args.no_startup:
            startup = measure_startup(Path(tmp) / "startup", runs=5 if args.quick else 11)
            print("\nCLI start-up (median wall time, s):", json.dumps(startup))
            report["startup"] = startup
    print("\n" + json.dumps(report))


if __name__ == "__main__":
    main()
