"""The records a run reports while it works, for render.py to show: typed, plain, and at the
bottom of the import graph, so the presenter depends on nothing above it.

A `Notice` is a one-line remark (which session, which model, a retry); the others follow the
runner's loop: a model call started, a piece of streamed text, a checkpoint committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentctl.state import Checkpoint


@dataclass(frozen=True)
class Notice:
    """A one-line remark for the user (which session, which model runs, a retry)."""

    text: str
    session_id: str | None = None


@dataclass(frozen=True)
class ModelCallStarted:
    session_id: str


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Checkpointed:
    checkpoint: Checkpoint


RunEvent = ModelCallStarted | TextDelta | Checkpointed | Notice
