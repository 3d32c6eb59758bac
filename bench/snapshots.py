"""Workspace snapshots: capture and restore time, and disk growth, beside plain git.

A workspace of N files of 4 KB (100 to a folder); each step changes 4 of them. Measured in one
run: agentctl's incremental capture (workspace/snapshots.py: list what changed with the size
cap in mind, `git add -A`, `git write-tree`) against the floor, a plain `git add -A && git
write-tree` of the same workspace in an ordinary repository; a restore of the workspace to the
tree of 50 steps before; and the snapshot store's bytes after 100 steps against the bytes those
steps actually changed, compressed (zlib, as git stores them).

Run: python -m bench.snapshots [--quick]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from agentctl.workspace.snapshots import Snapshots

FILE_BYTES = 4096


def make_workspace(root: Path, files: int) -> list[Path]:
    paths = []
    for n in range(files):
        folder = root / f"d{n // 100:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"f{n:05d}.txt"
        path.write_bytes(os.urandom(FILE_BYTES // 2).hex().encode())
        paths.append(path)
    return paths


def change(paths: list[Path], step: int) -> int:
    """Rewrite 4 files; return the compressed bytes of what changed."""
    changed = 0
    for k in range(4):
        body = os.urandom(FILE_BYTES // 2).hex().encode()
        paths[(step * 4 + k) * 37 % len(paths)].write_bytes(body)
        changed += len(zlib.compress(body))
    return changed


def plain_git(root: Path) -> dict[str, str]:
    env = {**os.environ, "GIT_DIR": str(root / ".git"), "GIT_WORK_TREE": str(root)}
    subprocess.run(["git", "init", "-q"], env=env, check=True)
    return env


def floor_capture(env: dict[str, str], root: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["git", "add", "-A"], env=env, cwd=root, check=True)
    subprocess.run(["git", "write-tree"], env=env, cwd=root, check=True, capture_output=True)
    return time.perf_counter() - started


def measure(files: int, steps: int, root: Path) -> dict[str, Any]:
    ours_dir, floor_dir = root / f"ours{files}", root / f"floor{files}"
    ours_paths = make_workspace(ours_dir, files)
    floor_paths = make_workspace(floor_dir, files)
    snaps = Snapshots(ours_dir, root / f"data{files}")
    env = plain_git(floor_dir)
    started = time.perf_counter()
    trees = [snaps.capture().tree]
    first_capture = time.perf_counter() - started
    floor_capture(env, floor_dir)
    size_before = snaps.size()
    ours, floor, changed = [], [], 0
    for step in range(steps):
        changed += change(ours_paths, step)
        change(floor_paths, step)
        started = time.perf_counter()
        trees.append(snaps.capture(trees[-1]).tree)
        ours.append(time.perf_counter() - started)
        floor.append(floor_capture(env, floor_dir))
    restores = []
    for back in (50, 25, 10):
        current = snaps.capture().tree
        started = time.perf_counter()
        snaps.restore(current, trees[-min(back, len(trees) - 1)])
        restores.append(time.perf_counter() - started)
        snaps.restore(trees[-min(back, len(trees) - 1)], current)
    added = snaps.size() - size_before
    out = {
        "files": files,
        "first_capture_ms": round(first_capture * 1000, 1),
        "capture_ms": round(statistics.median(ours) * 1000, 1),
        "floor_ms": round(statistics.median(floor) * 1000, 1),
        "restore_ms": round(statistics.median(restores) * 1000, 1),
        "bytes_added": added,
        "bytes_changed_compressed": changed,
    }
    out["capture_vs_floor"] = round(out["capture_ms"] / out["floor_ms"], 2)
    out["bytes_vs_changed"] = round(added / changed, 2)
    return out


def run(quick: bool) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="agentctl-bench-snap-") as tmp:
        for files in (2000,) if quick else (2000, 20000):
            result = measure(files, 30 if quick else 100, Path(tmp))
            print("workspace snapshots:", json.dumps(result))
            results.append(result)
    return results


if __name__ == "__main__":
    run("--quick" in sys.argv)
