"""The one error hierarchy and the exit codes of the CLI contract.

Every failure a user can cause or meet is an `AgentctlError` subclass that carries its exit code
and, where it helps, the next command to try; `cli.py` turns it into one red line. Nothing here
imports the rest of agentctl.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2  # usage or bad argument: unknown session, bad task file, bad rollback target
    PAUSED = 3  # waiting for input and --no-input was given
    BUSY = 4  # the session is running elsewhere
    MODEL = 5  # model unreachable, auth failed, retries exhausted
    STORE = 6  # store corrupt, newer schema, unwritable
    NOT_RUNNING = 7  # watch: nothing runs the session any more (its process stopped); resume
    INTERRUPTED = 130  # Ctrl-C; state saved


class AgentctlError(Exception):
    """Base of every error agentctl reports to a user."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint  # the next command to try, shown after the message


class UsageError(AgentctlError):
    exit_code = ExitCode.USAGE


class NoStoreError(UsageError):
    """A store URL that names no store, given to a command that does not make one: only
    `run`, `import`, `move` (its target) and `profile set` create a store."""


class UnknownSessionError(UsageError):
    pass


class AmbiguousSessionError(UsageError):
    pass


class TaskFileError(UsageError):
    pass


class RollbackTargetError(UsageError):
    pass


class WindowTooSmallError(UsageError):
    """The tool schemas and the goal leave no room in the context window: compacting cannot
    make any, so no request is sent."""


class NotWaitingError(UsageError):
    """--input was given for a session that is not waiting for input."""


class SessionBusyError(AgentctlError):
    exit_code = ExitCode.BUSY


class ModelError(AgentctlError):
    exit_code = ExitCode.MODEL


class StoreError(AgentctlError):
    exit_code = ExitCode.STORE


class UnknownCheckpointError(UsageError):
    """A checkpoint number the session does not have."""

    def __init__(self, session_id: str, checkpoint_id: int) -> None:
        super().__init__(
            f"session {session_id} has no checkpoint {checkpoint_id}",
            hint=f"agentctl history {session_id}",
        )
        self.session_id = session_id
        self.checkpoint_id = checkpoint_id


class InvalidDraftError(AgentctlError):
    """A checkpoint draft that cannot apply to its parent (a caller's mistake, not damage)."""


class SessionExistsError(StoreError):
    """create_session with an id the store already has."""


class ArrivingError(SessionBusyError):
    """A copy a move is bringing into this store, not yet released by it (transfer.py): it
    takes no lease until the move finishes, so the session never runs in two stores."""


class HeadMovedError(SessionBusyError):
    """A commit found that another writer extended the session first (optimistic check)."""


class InvalidStateError(StoreError):
    """A stored state failed validation or was written by a newer agentctl."""


class InvalidTransition(Exception):
    """A lifecycle event that the transition table does not allow from the current state.

    Not an AgentctlError: the runner turns it into a tool error for the model, it never reaches
    a user as such.
    """

    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"event {event!r} is not allowed in state {state!r}")
        self.state = state
        self.event = event
