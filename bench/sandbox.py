"""The shell sandbox's cost: a sandboxed `run_shell` of `true` against the same unsandboxed, and
the workspace capture after a sandboxed command against one after an unsandboxed command.

Measured in one run, the kinds alternated so the shared machine's drift falls on all:
RunShell.run({"command": "true"}) through bubblewrap (tools/sandbox.py: as root, inside a pids
cgroup too, joined by a shell started after the previous command) and without; beside them, as
root, a sandboxed command that joins the group on its way (as the first command of a process
does, and every command did before that shell) and one without the group; the once-per-run
probe that decides whether bubblewrap works; then, in a workspace of 2,000 files, a command
that rewrites one file and the incremental capture after it (workspace/snapshots.py), which
must see the one file and take no longer.

Run: python -m bench.sandbox [--quick]
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agentctl.tools import effects_of
from agentctl.tools.files import Workspace
from agentctl.tools.sandbox import _PROBED, Sandbox, _drop_standby, pids_cgroups, probe, secrets_of
from agentctl.tools.shell import RunShell
from agentctl.workspace.snapshots import Snapshots

TARGET_MS = 15.0  # issue 27: the median overhead of a sandboxed command
# Before a command that uses the pids group, as a model's turn comes between two commands: a
# cgroup join within a grace period of the last one skips the kernel's wait (rcu_sync), so back
# to back they would hide what a join costs.
PAUSE = 0.1


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


CPU: list[float] = []  # CPU seconds of the children of the last `timed` calls


def timed(shell: RunShell, command: str) -> float:
    """Wall time of one call; its children's CPU time (user + system) goes to CPU."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    outcome = shell.run({"command": command})
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    assert not outcome.is_error, outcome.content
    return elapsed


def make_workspace(root: Path, files: int) -> None:
    for n in range(files):
        folder = root / f"d{n // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{n:05d}.txt").write_bytes(os.urandom(1024).hex().encode())


def measure(root: Path, runs: int, files: int) -> dict[str, Any]:
    _PROBED.clear()
    started = time.perf_counter()
    bwrap, why = probe(os.environ)
    probe_s = time.perf_counter() - started
    if bwrap is None:
        return {"unavailable": why}
    ws = root / "ws"
    make_workspace(ws, files)
    home = os.environ.get("HOME")
    box = Sandbox(bwrap, ws, hidden=secrets_of(home, ()), cgroups=pids_cgroups())
    plain, boxed = RunShell(Workspace(ws)), RunShell(Workspace(ws), sandbox=box)
    # Root's commands join a pids cgroup (the process limit); what that costs, apart:
    uncounted = RunShell(Workspace(ws), sandbox=Sandbox(bwrap, ws, hidden=box.hidden))
    assert effects_of(boxed).confined
    for shell in (plain, boxed, uncounted):  # warm the page cache and bubblewrap's binary
        timed(shell, "true")
    bare, sandboxed, no_group, joining = [], [], [], []
    cpu: dict[str, list[float]] = {"bare": [], "sandboxed": []}
    for _ in range(runs):
        bare.append(timed(plain, "true"))
        cpu["bare"].append(CPU[-1])
        time.sleep(PAUSE)
        sandboxed.append(timed(boxed, "true"))
        cpu["sandboxed"].append(CPU[-1])
        no_group.append(timed(uncounted, "true"))
        if box.cgroups is not None:
            _drop_standby()  # as the first command of a process: it joins the group itself
            time.sleep(PAUSE)
            joining.append(timed(boxed, "true"))
    overhead = [s - b for s, b in zip(sandboxed, bare, strict=True)]
    snaps = Snapshots(ws, root / "data")
    tree = snaps.capture().tree
    captures: dict[str, list[float]] = {"unsandboxed": [], "sandboxed": []}
    changed: dict[str, set[int]] = {"unsandboxed": set(), "sandboxed": set()}
    for step in range(max(runs // 2, 5)):
        for kind, shell in (("unsandboxed", plain), ("sandboxed", boxed)):
            timed(shell, f"echo {kind}{step} >> d000/f00000.txt")
            started = time.perf_counter()
            captured = snaps.capture(tree)
            captures[kind].append(time.perf_counter() - started)
            changed[kind].add(len(captured.changed))
            tree = captured.tree
    out = {
        "runs": runs,
        "as_root": os.geteuid() == 0,
        "pids_cgroup": box.cgroups is not None,
        "probe_ms": ms(probe_s),
        "unsandboxed_true_ms": ms(statistics.median(bare)),
        "sandboxed_true_ms": ms(statistics.median(sandboxed)),
        "overhead_median_ms": ms(statistics.median(overhead)),
        "overhead_p90_ms": ms(sorted(overhead)[int(len(overhead) * 0.9)]),
        "overhead_min_ms": ms(min(sandboxed) - min(bare)),
        "cpu_overhead_median_ms": ms(
            statistics.median(cpu["sandboxed"]) - statistics.median(cpu["bare"])
        ),
        "load_average": round(os.getloadavg()[0], 1),
        "overhead_without_cgroup_ms": ms(
            statistics.median(n - b for n, b in zip(no_group, bare, strict=True))
        ),
        "overhead_joining_on_the_way_ms": ms(
            statistics.median(j - b for j, b in zip(joining, bare, strict=True))
        )
        if joining
        else None,
        "workspace_files": files,
        "capture_after_unsandboxed_ms": ms(statistics.median(captures["unsandboxed"])),
        "capture_after_sandboxed_ms": ms(statistics.median(captures["sandboxed"])),
        "files_changed_per_capture": sorted(changed["unsandboxed"] | changed["sandboxed"]),
    }
    out["within_target"] = out["overhead_median_ms"] <= TARGET_MS
    return out


def run(quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="agentctl-bench-sandbox-") as tmp:
        result = measure(Path(tmp), 20 if quick else 100, 2000)
    print("\nshell sandbox:", json.dumps(result))
    return result


if __name__ == "__main__":
    run("--quick" in sys.argv)
