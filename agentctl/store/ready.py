"""The head conversation kept ready for the next request.

Rebuilding a conversation from its messages is linear in its length on every resume: read each
message, validate it, build the request (70 ms of a resume at 10,000 messages). So when a run
stops, the runner leaves the conversation in the store in the form the next request can be
built from without building a model of any message: the conversation as the model adapter
sends it (state.Prepared: text only that adapter reads, named by its format), the token total
and the newest turn, keyed by its last message. A message id names one conversation (messages
are never changed; a chain ends at its tip), so a resume at the same tip sends that text as it
is (when the same adapter sends it: any other builds its request from the messages), and
the messages are read and validated only when something needs them as models: after the first
request is out. Any other head (a rollback, or checkpoints written by a run that was killed)
reads the messages first, as before. The copy holds only what the first request and the choice
of the next action need: the messages themselves stay where they are.

It is a cache: a copy that is stale, damaged, another session's or of another layout is
ignored, and none is no error. A sound copy that its messages contradict (only an edited store
has one) is found when they are read after the request: a StoreError, and nothing is written.
Commands other than `run`/`resume` never read it.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentctl.domain.session import Prepared
from agentctl.store.base import gc_paused

if TYPE_CHECKING:
    from agentctl.domain.session import Message, Session, SessionInfo
    from agentctl.store.base import Store

# Below this many messages a conversation loads in about a millisecond: not worth a write.
READY_MIN_MESSAGES = 200
# Of the layout below; a copy of another version is ignored (2: wire_messages; 3: the adapter's
# format named before its text).
READY_VERSION = 3


@dataclass(frozen=True)
class ReadyConversation:
    # Whose: "ID CREATED_AT". An older agentctl deletes a session without knowing this copy;
    # a session made later under the same id must not take it for its own.
    owner: str
    tip: int  # the id of the last message: the key
    count: int  # messages in the conversation
    tokens: int  # their counted tokens, summed
    turn: str  # stored form (JSON array) of the newest turn: its assistant message on
    # The conversation as the adapter sends it: its format, a newline, its text (Prepared).
    # SQL backends keep it in a column named `wire`.
    prepared: str
    check: int  # CRC-32 of all the above and READY_VERSION, to tell a damaged or foreign copy

    @classmethod
    def of(
        cls, info: SessionInfo, messages: Sequence[Message], tip: int, prepared: Prepared
    ) -> ReadyConversation:
        from agentctl.domain.session import newest_turn
        from agentctl.store.codec import encode_messages

        fields = (
            owner_of(info),
            tip,
            len(messages),
            sum(m.tokens for m in messages),
            encode_messages(messages[newest_turn(messages) :]),
            f"{prepared.format}\n{prepared.text}",
        )
        return cls(*fields, check=_check(*fields))

    def sound(self) -> bool:
        return self.check == _check(
            self.owner, self.tip, self.count, self.tokens, self.turn, self.prepared
        )

    def row(self) -> tuple[str, int, int, int, str, str, int]:
        """The fields in order, as SQL backends store them (`from_row` reads them back)."""
        return (self.owner, self.tip, self.count, self.tokens, self.turn, self.prepared, self.check)

    def document(self) -> bytes:
        """One file (JSON lines): a JSON header line, then the two texts back to back."""
        header = {
            "owner": self.owner,
            "tip": self.tip,
            "count": self.count,
            "tokens": self.tokens,
            "check": self.check,
            "turn_length": len(self.turn),
        }
        text = json.dumps(header) + "\n" + self.turn + self.prepared
        return text.encode("utf-8", "surrogatepass")


def from_row(row: Sequence[object]) -> ReadyConversation | None:
    """A stored copy, or None when its fields are not of their types (it is then not used)."""
    kinds = (str, int, int, int, str, str, int)
    if len(row) != len(kinds) or not all(
        type(value) is kind for value, kind in zip(row, kinds, strict=True)
    ):
        return None
    return ReadyConversation(*row)  # type: ignore[arg-type]


def from_document(data: bytes) -> ReadyConversation | None:
    try:
        text = data.decode("utf-8", "surrogatepass")
        first, _, rest = text.partition("\n")
        header = json.loads(first)
        split = header["turn_length"]
        fields = (
            header["owner"],
            header["tip"],
            header["count"],
            header["tokens"],
            rest[:split],
            rest[split:],
            header["check"],
        )
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None
    return from_row(fields)


class Ready:
    """A session's conversation while only its ready copy is read (state.Pending): the
    messages are read from the store the session came from when first asked for."""

    def __init__(self, copy: ReadyConversation, read: Callable[[], tuple[Message, ...]]) -> None:
        self.copy = copy
        self._read = read

    @property
    def tip(self) -> int:
        return self.copy.tip

    @property
    def count(self) -> int:
        return self.copy.count

    @property
    def tokens(self) -> int:
        return self.copy.tokens

    @property
    def prepared(self) -> Prepared | None:
        form, newline, text = self.copy.prepared.partition("\n")
        return Prepared(form, text) if newline else None

    def decoded(self, session_id: str) -> tuple[Message, ...]:
        """Every message, validated; a StoreError when they are not what the copy says."""
        from agentctl.errors import StoreError

        messages = self._read()
        if len(messages) != self.count or sum(m.tokens for m in messages) != self.tokens:
            raise StoreError(
                f"session {session_id}: its messages do not match the conversation kept ready "
                "for it (the copy was sent to the model)",
                hint=f"agentctl verify {session_id}",
            )
        return messages

    def decoded_turn(self, session_id: str) -> tuple[Message, ...]:
        from agentctl.store.codec import decode_messages

        return decode_messages(self.copy.turn, where=f"session {session_id}")


def owner_of(info: SessionInfo) -> str:
    from agentctl.store.base import cache_owner

    return cache_owner(info.id, info.created_at)


def _check(owner: str, tip: int, count: int, tokens: int, turn: str, prepared: str) -> int:
    head = f"{READY_VERSION}:{owner}:{tip}:{count}:{tokens}:{len(turn)}:"
    crc = zlib.crc32(head.encode())
    for text in (turn, prepared):
        # A piece at a time: UTF-8 encodes each character on its own, so the pieces' bytes are
        # the whole text's, and no copy of a conversation of tens of megabytes is made (its
        # fresh pages were most of the check's time, and grew faster than the text).
        for start in range(0, len(text), CHECK_PIECE):
            piece = text[start : start + CHECK_PIECE]
            crc = zlib.crc32(piece.encode("utf-8", "surrogatepass"), crc)
    return crc


CHECK_PIECE = 1 << 18  # characters


def load_head(store: Store, session_id: str) -> Session:
    """The session at its head for the next request: from the ready conversation when it is
    the head's (its messages read from `store` when first asked for: while it is open), else
    from the messages."""
    from agentctl.domain.session import Session

    copy = store.ready_conversation(session_id)
    if copy is not None:
        head, info = store.head(session_id), store.info(session_id)
        if copy.tip == head.message_tip and copy.owner == owner_of(info) and copy.sound():
            read = lambda: store.load(session_id, head.id).messages  # noqa: E731
            return Session(info, head, ready=Ready(copy, read))
    return store.load(session_id)


def keep_ready(
    store: Store, session: Session, prepare: Callable[[Sequence[Message]], Prepared] | None
) -> None:
    """Leave `session`'s conversation ready for the next resume, as `prepare` (the model
    adapter's) makes it; the runner calls this when a run stops (with no adapter, as when the
    run never called the model, none is left). A failure to write it costs the next resume
    time, nothing else: ignored."""
    # The collector paused: the copy builds a dict per message while the session's messages
    # are alive, and each full collection walked all of them (17-24x the time for 10x the
    # messages; 10x with it paused).
    with gc_paused():
        from agentctl.errors import StoreError

        tip = session.checkpoint.message_tip
        if tip is None or session.ready_tip == tip or session.message_count < READY_MIN_MESSAGES:
            return
        if prepare is None:
            return
        with contextlib.suppress(StoreError):
            prepared = prepare(session.messages)
            ready = ReadyConversation.of(session.info, session.messages, tip, prepared)
            store.keep_ready(session.info.id, ready)
