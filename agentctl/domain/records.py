"""The records the views show (terminal/): what a run reports while it works (run events),
how it ended (RunReport), and what the other use cases return. Typed, plain, and at the
bottom of the import graph, so the views depend on nothing above it.

A `Notice` is a one-line remark (which session, which model, a retry); the run events follow
the runner's loop: a model call started, a piece of streamed text, a checkpoint committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentctl.domain.session import Checkpoint, Message, Session
    from agentctl.loop.context import Budget
    from agentctl.store.base import SessionSummary


@dataclass(frozen=True)
class Notice:
    """A one-line remark for the user (which session, which model runs, a retry)."""

    text: str
    session_id: str | None = None
    # The session runs in another process and this one only follows it (watch, or a prompt
    # answered in another terminal): an interrupt here stops nothing there.
    elsewhere: bool = False


class AnsweredElsewhere(Exception):
    """The question a terminal prompt waited on was answered in another terminal (or by a
    script): this process must not write. `typed` is what was typed here, if anything, and
    was not sent."""

    def __init__(self, typed: str | None = None, question: int | None = None) -> None:
        super().__init__("answered in another terminal")
        self.typed = typed
        self.question = question  # the checkpoint that asked it, when known


@dataclass(frozen=True)
class SessionStarted:
    """A run begins: which session, model, server and store. Sent before the first request
    goes out; a view may hold it until the first checkpoint (nothing is printed before the
    request is out)."""

    session_id: str
    model: str
    server: str  # the base URL without credentials, or "the OpenAI API"
    store: str  # the store URL, password masked
    workspace: str | None
    resumed_at: int | None = None  # a resume: the head it starts from
    price: tuple[float, float] | None = None  # dollars per million tokens in/out (None: unpriced)
    sandbox: str | None = None  # how run_shell is confined (None: not said)


@dataclass(frozen=True)
class ModelCallStarted:
    session_id: str


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class TurnUsage:
    """One model reply's tokens and the time it took (from the request to the whole reply)."""

    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    seconds: float
    reported: bool = True  # False: the server said nothing about tokens


@dataclass(frozen=True)
class ToolStarted:
    """A work tool is about to run (after its `tool_started` checkpoint, if it has one)."""

    call_id: str
    tool: str
    arguments: dict[str, Any]
    side_effect: str  # read, write, exec
    subject: str = ""  # what the call works on, as its tool names it: a path, `$ command`
    preview: str | None = None  # what a write will change (a diff), taken just before it runs
    approved: bool = False  # a person said yes to this call (its diff was in the question)


@dataclass(frozen=True)
class Checkpointed:
    checkpoint: Checkpoint
    messages: tuple[Message, ...] = ()  # the messages it added to the conversation


RunEvent = (
    SessionStarted | ModelCallStarted | TextDelta | TurnUsage | ToolStarted | Checkpointed | Notice
)


class Stop(StrEnum):
    """Why a run stopped."""

    DONE = "done"
    PAUSED = "paused"  # waiting for input that was not given
    TURN_LIMIT = "turn_limit"
    NO_PLAN = "no_plan"  # the model answered in text, twice, instead of submitting a plan
    NO_PROGRESS = "no_progress"  # replies in a row without a tool call (actions.NoProgress)
    QUEUED = "queued"  # run --detach: recorded for a worker (PostgreSQL), not run here
    DRAINED = "drained"  # a worker stopping (SIGTERM) between two steps: runnable again
    # followed (watch, a question answered elsewhere): no process runs the session any more
    # and it is neither done nor waiting (its process was killed, or stopped on an error)
    NOT_RUNNING = "not_running"


@dataclass(frozen=True)
class ToolArgument:
    name: str
    type: str  # "string", "array of strings", …
    required: bool
    description: str | None = None
    default: object = None


@dataclass(frozen=True)
class McpServerRow:
    """A configured MCP server as `agentctl mcp list` shows it: secrets masked."""

    name: str
    transport: str  # stdio or http
    target: str  # the command line, or the URL without credentials
    env: dict[str, str]  # masked values
    headers: dict[str, str]  # masked values
    enabled: bool
    required: bool
    trust_annotations: bool


@dataclass(frozen=True)
class McpToolRow:
    """A tool `agentctl mcp check` found: how it is offered and what its schema costs."""

    name: str
    description: str
    side_effect: str
    read_only: bool | None
    destructive: bool | None
    tokens: int


@dataclass(frozen=True)
class ToolInfo:
    """A tool a task gets, as `agentctl tools` lists it."""

    name: str
    description: str
    side_effect: str  # control, read, write, exec
    arguments: tuple[ToolArgument, ...]
    approval: str  # when a call needs a person's yes


@dataclass(frozen=True)
class FileChange:
    """A workspace file a run changed, with its lines added and removed (None: binary)."""

    path: str
    added: int | None
    removed: int | None


@dataclass(frozen=True)
class RunReport:
    """How a run ended: why it stopped, the session at its head, and (added by the use case
    that ran it) the workspace files it changed and where it began. The runner returns one;
    `run`, `resume`, `watch` and a worker hand it to the views."""

    stop: Stop
    session: Session
    changes: tuple[FileChange, ...] = ()  # the workspace files this run changed
    started_at: int | None = None  # the checkpoint the run began from (a rollback target)
    followed: bool = False  # the session ran in another process; this one only followed it


@dataclass(frozen=True)
class SessionView:
    """A session as `show` presents it: its state and the context budget it runs under."""

    session: Session
    budget: Budget
    strategy: str
    snapshot_bytes: int | None = None  # the workspace's snapshot store on disk (None: none)
    forks: tuple[str, ...] = ()  # sessions forked from this one ("id (at checkpoint N)")
    # This user's word on its settings (trust.py): "own" (started here), "accepted" (from
    # elsewhere, accepted), None (from elsewhere, or changed since: resume asks first).
    trust: str | None = None
    trust_since: int = 0  # approvals asked before this checkpoint do not count


@dataclass(frozen=True)
class ConfigRow:
    key: str
    value: str | None  # secrets masked; None when not set
    source: str  # "config file", "env AGENTCTL_MODEL", "default", "not set"


@dataclass(frozen=True)
class RollbackReport:
    head: Checkpoint  # the new `rollback` checkpoint
    target: int  # the checkpoint it stands on
    kept_preferences: list[str]  # remembered on the abandoned branch: they stay in the profile
    # Calls on the abandoned branch whose tools said their effects may reach outside the
    # workspace, so a rollback does not undo them: those recorded with their command, by the
    # command; the others by the tool's name.
    commands: list[str]
    outside_calls: list[str]
    # The workspace: (status, path) of each file restored (A: created, D: deleted, M: put
    # back); None when files were not restored, and `files_note` says why.
    files: list[tuple[str, str]] | None = None
    files_note: str | None = None
    not_restored: tuple[str, ...] = ()  # not captured now (ignored, over a cap): left as they are
    dry_run: bool = False  # nothing was written: this is what a rollback would do
    conversation: bool = True  # False: --files-only, the conversation stayed at the head
    forward: bool = False  # the target is off the head's path: files move forward, not back


@dataclass
class SessionReport:
    """What `verify` found in one session."""

    session_id: str
    checkpoints: int
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImportReport:
    session_id: str
    checkpoints: int
    added: int  # 0: it was all there already
    source_id: str  # the id in the export (differs with --new-id)
    settings: str = ""  # what it would do here (trust.describe): resume asks before they count


@dataclass(frozen=True)
class MoveReport:
    session_id: str
    checkpoints: int
    to: str  # the target store's URL, password masked
    resume: str  # the command that continues it there, ready to paste


@dataclass(frozen=True)
class WorkspaceDiff:
    """`agentctl diff`: the workspace changes between two checkpoints."""

    session_id: str
    old: int
    new: int
    files: list[tuple[str, str]]  # (status, path): A added, D deleted, M modified, T type
    text: str  # the unified diff (or --stat summary), as git printed it: untrusted file text


@dataclass(frozen=True)
class Doomed:
    summary: SessionSummary
    bytes: int  # what its checkpoints and messages take, serialized


@dataclass(frozen=True)
class SharedSnapshots:
    """A workspace's snapshot store that sessions outside this store also name."""

    workspace: str
    others: tuple[str, ...]  # sessions not in this store that captured there (or moved away)
    bytes: int  # what the snapshot store takes on disk


@dataclass(frozen=True)
class UsageRow:
    key: str  # the model, the day or the session
    sessions: int
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None  # dollars, where the model's price is known; None: unpriced


HIT_START, HIT_END = "\ue000", "\ue001"  # around a match in a snippet (private-use characters)


@dataclass(frozen=True)
class SearchHit:
    session_id: str
    checkpoint: int  # the checkpoint that added the message
    role: str
    snippet: str  # text around the match, the match between HIT_START and HIT_END
