"""The persisted models: conversation, task and user state, task specs and checkpoints.

Every model that is written to a store carries `schema_version`; `store/codec.py` refuses newer
versions and upgrades older ones, so a state is either loaded whole and valid or not at all.
Models are frozen where they are history (messages, checkpoints) and copied with
`model_copy(update=...)` where they evolve (task state).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from agentctl.domain.checkpoints import Detail
from agentctl.domain.checkpoints import parse as parse_detail
from agentctl.domain.lifecycle import CheckpointKind, Outcome, State

Role = Literal["system", "user", "assistant", "tool"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_serializer(mode="wrap")
    def _stored_form(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        """The stored form (store/codec.py `encode`) leaves out fields at their defaults, but
        never `schema_version`: a payload without one reads as version 1."""
        data = handler(self)
        stored = isinstance(info.context, dict) and info.context.get("stored")
        if stored and isinstance(data, dict) and _versioned(type(self)):
            data = {"schema_version": getattr(self, "schema_version"), **data}  # noqa: B009
        return data


_VERSIONED: dict[type[BaseModel], bool] = {}


def _versioned(cls: type[BaseModel]) -> bool:
    """Whether `cls` has a schema_version, asked of pydantic once per class: its
    `model_fields` is a property that costs more than the rest of a small model's encoding."""
    versioned = _VERSIONED.get(cls)
    if versioned is None:
        versioned = _VERSIONED[cls] = "schema_version" in cls.model_fields
    return versioned


class FinishReason(StrEnum):
    """Why a model stopped replying, in the loop's words: every adapter maps its provider's
    reasons to these (a reason it does not know is OTHER)."""

    STOP = "stop"  # it said what it had to say
    TOOL_CALLS = "tool_calls"  # it called tools
    LENGTH = "length"  # cut at the output limit: what it said is incomplete
    CONTENT_FILTER = "content_filter"  # stopped by the provider's filter
    OTHER = "other"

    @classmethod
    def of(cls, reason: str | None) -> FinishReason | None:
        if reason is None:
            return None
        try:
            return cls(reason)
        except ValueError:
            return cls.OTHER


class ToolCall(_Model):
    id: str
    name: str
    arguments: str  # raw JSON text as the model sent it: it may be malformed, and that is data
    # What the server attached to the call beyond id, type and function, sent back with it
    # unchanged: Gemini 3 refuses a conversation whose calls lost their
    # `extra_content.google.thought_signature`. Provider data, not read by agentctl.
    provider_data: dict[str, Any] | None = None


class Message(_Model):
    """One message of the conversation, stored once and shared by every branch that has it."""

    schema_version: Literal[3] = 3  # 2: finish_reason; 3: tool_calls[].provider_data
    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tokens: int = 0  # counted once, when the message is created
    # Why the model stopped (assistant messages): a FinishReason's value, as an adapter gives
    # it (older stores may hold a server's own word: `finish` reads that as OTHER). Never sent.
    finish_reason: str | None = None

    @property
    def finish(self) -> FinishReason | None:
        """Why the model stopped, as the loop reads it (None: not a model's reply)."""
        return FinishReason.of(self.finish_reason)


EMPTY_REPLY = "(empty reply)"  # what an empty reply is sent as: servers refuse empty turns


def sent_content(message: Message) -> str | None:
    """A message's text as it is sent back to a model: an assistant turn always has some (""
    beside tool calls; EMPTY_REPLY for an empty reply: vLLM and sglang refuse empty turns)."""
    if message.role == "assistant":
        return message.content or ("" if message.tool_calls else EMPTY_REPLY)
    return message.content


@dataclass(frozen=True)
class Prepared:
    """A conversation as one model adapter sends it, named by the adapter's `format`: what the
    store keeps ready for the next resume (store/ready.py), so its first request is sent
    without a message being decoded. Opaque to everything but the adapter that made it; any
    other adapter builds its request from the messages."""

    format: str
    text: str


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD. Python makes them of bytes that are
    not UTF-8 (a file name, a command line) and of `\\ud800` escapes in a server's JSON; UTF-8
    cannot encode them, so no store and no server could take a message that held one, and
    every resume of its session would meet the same refusal."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def valid_value(value: Any) -> Any:
    """A parsed JSON value (tool-call arguments) with valid_text applied to every string."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, list):
        return [valid_value(v) for v in value]
    if isinstance(value, dict):
        return {valid_text(k): valid_value(v) for k, v in value.items()}
    return value


def valid_message(message: Message) -> Message:
    """`message` with valid_text applied to all its text (itself when there was nothing to do)."""
    content = message.content and valid_text(message.content)
    call_id = message.tool_call_id and valid_text(message.tool_call_id)
    calls = message.tool_calls
    if any(valid_text(t) != t for c in calls for t in (c.id, c.name, c.arguments)):
        calls = tuple(
            c.model_copy(
                update={
                    "id": valid_text(c.id),
                    "name": valid_text(c.name),
                    "arguments": valid_text(c.arguments),
                }
            )
            for c in calls
        )
    if (content, call_id, calls) == (message.content, message.tool_call_id, message.tool_calls):
        return message
    return message.model_copy(
        update={"content": content, "tool_call_id": call_id, "tool_calls": calls}
    )


UNNAMED_TOOL = "unnamed_tool"
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def sendable_name(name: str) -> str:
    """A tool name as OpenAI and Azure accept it (`^[A-Za-z0-9_-]{1,64}$`): an empty one is
    UNNAMED_TOOL, other characters are `_`. Such a call named no tool agentctl has."""
    if _TOOL_NAME.fullmatch(name):
        return name
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or UNNAMED_TOOL


def sendable_arguments(arguments: str) -> str:
    """Arguments as received when they are a JSON object, else `{}`: the tool error that
    answered the call tells the model what was wrong with them."""
    try:
        return arguments if isinstance(json.loads(arguments), dict) else "{}"
    except (ValueError, RecursionError):
        return "{}"


class StepRecord(_Model):
    step: str
    summary: str


class PendingQuestion(_Model):
    question: str
    tool_call_id: str | None  # the call to answer; None when the model asked in plain text
    kind: Literal["question", "approval"] = "question"  # approval: may this tool call run?


class Approval(_Model):
    """The user's yes to one tool call: consumed when the call starts, cleared by the next
    model reply, never carried by a rollback (design.md §4)."""

    call_id: str
    asked_at: int  # the checkpoint that put the question


class EarlierGoal(_Model):
    """A goal the session finished before a follow-up gave it the next one."""

    goal: str
    outcome: Outcome | None = None
    result: str | None = None


class Grant(_Model):
    """The user's `a` at an approval: this tool (for run_shell, this exact command) runs without
    asking for the rest of the session. It names the session that granted it, so a fork (a new
    session) does not inherit it, and it lives on the task state, so a rollback to before the
    checkpoint that granted it (`at`) undoes it."""

    tool: str
    command: str | None = None  # run_shell: the exact command; None: any call of the tool
    session: str
    at: int  # the checkpoint that recorded the answer


class InstructionsFile(_Model):
    """A project-instructions file (AGENTS.md) the session's system prompt carries: where it is,
    and the digest of the exact text used (the text itself is in the conversation)."""

    path: str
    sha256: str
    chars: int


class McpOffer(_Model):
    """One MCP server as a session offered it: never an env value or a header (secrets), the
    command or URL with credentials masked; each tool's offered name with a digest of its
    description, schema and annotations, so a resume can say what changed."""

    name: str
    transport: str  # stdio or http
    target: str
    server: str | None = None  # "name version" as the server gave it
    up: bool = True  # an optional server that was down: its tools were left out
    digest: str = ""  # of the whole listing
    tools: dict[str, str] = Field(default_factory=dict)  # offered name -> digest


class Task(_Model):
    """What the agent knows about its task: goal, plan, progress, gathered data, outcome."""

    # 2: pending_question.kind, approved; 3: approval (one call, once) and in_flight;
    # 4: workspace_tree; 5: earlier, grants, auto_approve, instructions; 6: refused_params;
    # 7: stalled; 8: token_fit; 9: mcp
    schema_version: Literal[9] = 9
    goal: str
    plan: tuple[str, ...] = ()
    completed: tuple[StepRecord, ...] = ()
    data: dict[str, Any] = Field(default_factory=dict)
    pending_question: PendingQuestion | None = None
    last_error: str | None = None
    outcome: Outcome | None = None
    result: str | None = None
    nudged: bool = False  # the model got one reminder to call a tool; the next text is a question
    approval: Approval | None = None  # the one call the user allowed to run next
    # A side-effecting call that started and has no result yet. It travels with rollback and
    # fork: a session that stands here has an effect of unknown outcome, never one to re-run.
    in_flight: str | None = None
    # The window the server accepts, when it refused a longer conversation (below the budget).
    context_limit: int | None = None
    # Server prompt tokens per token we counted, from the last reply's usage (approximate
    # counts only): the budget is calibrated with it.
    token_ratio: float | None = None
    # How the server counts the fixed part and the text apart, fitted on the recent requests
    # (context.observed, context.text_line); the budget is calibrated with it too.
    token_fit: tuple[float, ...] | None = None
    # The workspace as it was at this checkpoint: a tree id in the workspace's snapshot store
    # (workspace/snapshots.py). It travels with rollback and fork, which is how a rollback
    # knows which files to put back.
    workspace_tree: str | None = None
    tools_tokens: int | None = None  # what the tool schemas take of every call, as we count
    # The goals finished before follow-ups gave this one, oldest first, with their results.
    earlier: tuple[EarlierGoal, ...] = ()
    grants: tuple[Grant, ...] = ()  # the user's `a` answers: calls that run without asking
    # Write and shell calls run without asking (run --yes; resume --yes / --ask change it).
    auto_approve: bool = False
    instructions: tuple[InstructionsFile, ...] = ()  # the AGENTS.md files the prompt carries
    # Request fields the server refused (replies.REFUSABLE): left out, or replaced, from then on.
    refused_params: tuple[str, ...] = ()
    # The newest replies in a row without a tool call, by reason (decide.stall_reason: "cut",
    # "empty", "text", "filtered"); a tool call or the user's input clears it.
    stalled: tuple[str, ...] = ()
    # The MCP servers and tools offered from this checkpoint on (a resume records a change).
    mcp: tuple[McpOffer, ...] = ()

    @property
    def current_step(self) -> int:
        """Index into `plan` of the step being worked on (== len(plan) when all are done)."""
        return len(self.completed)


class Usage(_Model):
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    unreported: int = 0  # calls whose server reported no usage (their tokens are not above)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            unreported=self.unreported + other.unreported,
        )


class ScriptToolCall(_Model):
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)  # a str is sent verbatim


class ScriptTurn(_Model):
    """One reply of the scripted model."""

    content: str | None = None
    tool_calls: tuple[ScriptToolCall, ...] = ()
    delay: float = Field(default=0.0, ge=0, allow_inf_nan=False)  # seconds before the reply
    # seconds between streamed pieces, to watch a reply arrive
    stream_delay: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    refusal: str | None = None  # streamed in the `refusal` field instead of `content`
    finish_reason: str | None = None  # e.g. "length": the reply was cut at the output limit


class TaskSpec(_Model):
    """A task as the user gave it: a task file or a goal on the command line."""

    # 2: allow; 3: context_window, context_strategy; 4: pass_env; 5: sandbox, network;
    # 6: mcp, mcp_servers
    schema_version: Literal[6] = 6
    goal: str = Field(pattern=r"\S")  # not empty, not only blanks
    title: str | None = None
    instructions: str | None = None
    model: str | None = None
    max_turns: int = Field(default=40, ge=1)
    script: tuple[ScriptTurn, ...] | None = None
    source: str | None = None  # the task file it came from, for display only
    allow: tuple[str, ...] = ()  # actions that need no approval: "write_file", "run_shell:pytest*"
    context_window: int | None = Field(default=None, ge=512)  # tokens; None: known or configured
    context_strategy: Literal["summarize", "drop"] | None = None  # None: configured, or summarize
    # Environment variables shell commands get although agentctl keeps them back (secrets):
    # names only; the values come from the environment agentctl runs in.
    pass_env: tuple[str, ...] = ()
    # The sandbox shell commands run in (None: the setting's), and whether they may reach the
    # network (None: the setting's, else no). `run --sandbox` is kept here too, so a resume
    # goes on in the same sandbox.
    sandbox: Literal["workspace-write", "read-only", "off", "required"] | None = None
    network: bool | None = None
    # MCP servers: those of the settings file the task uses (None: every enabled one), and
    # the task's own [mcp_servers.NAME] tables (checked by mcpconfig: no secret values).
    mcp: tuple[str, ...] | None = None
    mcp_servers: dict[str, dict[str, Any]] = Field(default_factory=dict)


class UserProfile(_Model):
    """User state: what outlives sessions and is injected into every new system prompt."""

    schema_version: Literal[1] = 1
    preferences: dict[str, str] = Field(default_factory=dict)
    recent_goals: tuple[str, ...] = ()

    def remember(self, key: str, value: str) -> UserProfile:
        return self.model_copy(update={"preferences": {**self.preferences, key: value}})

    def forget(self, key: str) -> UserProfile:
        return self.model_copy(
            update={"preferences": {k: v for k, v in self.preferences.items() if k != key}}
        )

    def with_goal(self, goal: str, keep: int = 10) -> UserProfile:
        goals = (goal, *[g for g in self.recent_goals if g != goal])[:keep]
        return self.model_copy(update={"recent_goals": goals})


SESSION_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class SessionInfo(_Model):
    """The immutable facts of a session, written once when it is created."""

    # 2: workspace; 3: tokenizer, approximate_tokens; 4: fork; 5: sandbox, network
    schema_version: Literal[5] = 5
    # An id is a folder name (JSON lines) and a word on the terminal: letters, digits, - and _
    # (agentctl makes hex; an export from elsewhere must hold one it could have made).
    id: str = Field(pattern=SESSION_ID)
    spec: TaskSpec
    model: str  # "scripted" or the model name; never a key or a URL with credentials
    created_at: str
    workspace: str | None = None  # absolute path the file and shell tools are confined to
    tokenizer: str | None = None  # the encoding that counted the messages' tokens
    approximate_tokens: bool | None = None  # True when it is not the model's own encoding
    forked_from: str | None = None  # "SESSION:CHECKPOINT" this session was forked from
    # The sandbox shell commands started in: workspace-write, read-only, off, or unavailable
    # (wanted, and bubblewrap could not run); each run_shell checkpoint records its own.
    sandbox: str | None = None
    network: bool | None = None  # whether they could reach the network


class Checkpoint(_Model):
    """One event and the session state right after it. Immutable; numbered 1, 2, 3… per session."""

    schema_version: Literal[1] = 1
    id: int
    parent: int | None
    # What happened: the checkpoint's kind (the lifecycle events among them). Stored as
    # "event", the name every store and export has used.
    kind: CheckpointKind = Field(
        validation_alias=AliasChoices("kind", "event"), serialization_alias="event"
    )
    from_state: State
    to_state: State
    created_at: str
    detail: dict[str, Any] = Field(default_factory=dict)
    task: Task
    usage: Usage = Usage()
    message_tip: int | None = None  # id of the last message of the conversation at this point

    def typed_detail(self) -> Detail:
        """The detail as the record of this checkpoint's kind (checkpoints.py)."""
        return parse_detail(self.kind, self.detail)


class Pending(Protocol):
    """A conversation not decoded yet (store/ready.py's ReadyConversation): its figures, and its
    messages when asked for."""

    @property
    def tip(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def tokens(self) -> int: ...
    @property
    def prepared(self) -> Prepared | None: ...  # the next request's conversation, as kept
    def decoded(self, session_id: str) -> tuple[Message, ...]: ...
    def decoded_turn(self, session_id: str) -> tuple[Message, ...]: ...


def newest_turn(messages: Sequence[Message]) -> int:
    """Where the newest turn starts: the newest assistant message, or the last message. All
    that deciding the next action looks at (loop/decide.py) is in it."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "assistant":
            return index
    return max(0, len(messages) - 1)


class Session:
    """A session loaded at one checkpoint: the facts, the checkpoint and the whole conversation.

    Not a pydantic model: it is never stored, and its conversation may come ready (store/ready.py),
    as text that is decoded into messages only when something asks for them."""

    __slots__ = ("_messages", "_ready", "_tokens", "checkpoint", "info")

    def __init__(
        self,
        info: SessionInfo,
        checkpoint: Checkpoint,
        messages: tuple[Message, ...] | None = None,
        *,
        ready: Pending | None = None,
        tokens: int | None = None,
    ) -> None:
        """`tokens`: the messages' tokens summed, when the caller knows it (the journal does:
        the last session's and the new messages'), so no turn sums the whole conversation."""
        if (messages is None) == (ready is None):
            raise TypeError("a Session takes its messages or a ready conversation")
        self.info = info
        self.checkpoint = checkpoint
        self._messages = messages
        self._ready = ready
        self._tokens = tokens

    @property
    def messages(self) -> tuple[Message, ...]:
        if self._messages is None:
            self._messages = _known(self._ready).decoded(self.info.id)
        return self._messages

    @property
    def ready(self) -> Pending | None:
        """The conversation as the store kept it ready, while no message was decoded."""
        return self._ready if self._messages is None else None

    @property
    def ready_tip(self) -> int | None:
        return self._ready.tip if self._ready is not None else None

    @property
    def message_count(self) -> int:
        return len(self._messages) if self._messages is not None else _known(self._ready).count

    @property
    def newest_turn(self) -> tuple[Message, ...]:
        """The messages from the newest assistant message on (ready.newest_turn)."""
        if self._messages is not None:
            return self._messages[newest_turn(self._messages) :]
        return _known(self._ready).decoded_turn(self.info.id)

    @property
    def state(self) -> State:
        return self.checkpoint.to_state

    @property
    def task(self) -> Task:
        return self.checkpoint.task

    @property
    def context_tokens(self) -> int:
        if self._messages is None:
            return _known(self._ready).tokens
        if self._tokens is None:
            self._tokens = sum(m.tokens for m in self._messages)
        return self._tokens

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Session):
            return NotImplemented
        return (self.info, self.checkpoint, self.messages) == (
            other.info,
            other.checkpoint,
            other.messages,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Session({self.info.id!r}, checkpoint={self.checkpoint.id})"


def _known(ready: Pending | None) -> Pending:
    assert ready is not None  # a Session has one or the other (__init__)
    return ready
