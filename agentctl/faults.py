"""Named points where a crash test can make this process die exactly as `kill -9` would.

Unarmed (always, outside tests), `hit` is one comparison. A test arms one point and an
occurrence in a child process; the n-th time that point is reached, the process SIGKILLs itself,
so nothing after it — no finally, no flush, no atexit — runs. This reaches places a timer cannot:
between a model reply and its checkpoint, inside a commit, inside a tool.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "model_reply_received",  # the reply is in memory, not yet checkpointed
    "commit_started",  # inside the store's write: transaction open, or half a line appended
    "commit_done",  # the checkpoint is durable; the loop has not acted on it yet
    "rollback_started",  # the rollback target is chosen, nothing written yet
    "restore_started",  # the rollback checkpoint is written, its files not yet restored
    "capture_in_git",  # inside a workspace capture: git's index.lock taken, the index unwritten
    "restore_in_git",  # inside a workspace restore: git's index.lock taken, no file written
)
ONE_OFF_POINTS = ("fork_written",)  # a fork's files written, not yet renamed into place

# A move's steps (transfer.move_session): reached only by `move`, so the fuzzer's move cases arm
# them (tests/fault/fuzz.py fuzz_move) and its session scenarios do not walk them.
MOVE_POINTS = (
    "move_copied",  # the copy is whole in the target, held there; the source not yet marked
    "move_marked",  # the source is marked moved; the target's copy not yet released
)

_armed: tuple[str, int] | None = None
_seen: dict[str, int] = {}


def arm(point: str, occurrence: int) -> None:
    global _armed
    _armed = (point, occurrence)
    _seen.clear()


def armed(point: str) -> bool:
    """Whether the next `hit(point)` kills (a point that first sets up what a kill leaves)."""
    return _armed is not None and _armed[0] == point and _seen.get(point, 0) + 1 == _armed[1]


def hit(point: str) -> None:
    if _armed is None or _armed[0] != point:
        return
    _seen[point] = _seen.get(point, 0) + 1
    if _seen[point] == _armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)
