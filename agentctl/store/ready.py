"""The head conversation kept ready for the next request.

Rebuilding a conversation from its messages is linear in its length on every resume: read each
message, validate it, build its wire form, serialise the request (70 ms of a resume at 10,000
messages). So when a run stops, the runner leaves the conversation in the store in the form the
next request needs: the wire-form JSON array, the token total and the newest turn, keyed by its
last message. A message id names one conversation (messages are never changed; a chain ends at
its tip), so a resume at the same tip sends that text as it is, and the messages are validated
only when something needs them as models (after the first reply). Any other head (a rollback, or
checkpoints written by a run that was killed) reads the messages as before.

It is a cache: a copy that is stale, damaged or from a newer agentctl is ignored, never trusted
and never an error. Commands other than `run`/`resume` never read it.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentctl.state import Message, Session, SessionInfo
    from agentctl.store.base import Store

# Below this many messages a conversation loads in about a millisecond: not worth a write.
READY_MIN_MESSAGES = 200
READY_VERSION = 1  # of the layout below; a copy of another version is ignored


@dataclass(frozen=True)
class ReadyConversation:
    # Whose: "ID CREATED_AT". An older agentctl deletes a session without knowing this copy;
    # a session made later under the same id must not take it for its own.
    owner: str
    tip: int  # the id of the last message: the key
    count: int  # messages in the conversation
    tokens: int  # their counted tokens, summed
    turn: str  # stored form (JSON array) of the newest turn: its assistant message on
    stored: str  # stored form (JSON array) of every message, validated only when needed
    wire: str  # the Chat Completions form (JSON array): what the next request sends
    check: int  # CRC-32 of all the above and READY_VERSION, to tell a damaged or foreign copy

    @classmethod
    def of(cls, info: SessionInfo, messages: Sequence[Message], tip: int) -> ReadyConversation:
        from agentctl.state import newest_turn
        from agentctl.store.codec import encode_messages

        turn_start = newest_turn(messages)
        fields = (
            owner_of(info),
            tip,
            len(messages),
            sum(m.tokens for m in messages),
            encode_messages(messages[turn_start:]),
            encode_messages(messages),
            wire_array(messages),
        )
        return cls(*fields, check=_check(*fields))

    def sound(self) -> bool:
        return self.check == _check(
            self.owner, self.tip, self.count, self.tokens, self.turn, self.stored, self.wire
        )

    def decoded(self, session_id: str) -> tuple[Message, ...]:
        """Every message, validated; a StoreError when they do not add up to the figures."""
        from agentctl.errors import StoreError
        from agentctl.store.codec import decode_messages

        messages = decode_messages(self.stored, where=f"session {session_id}")
        if len(messages) != self.count or sum(m.tokens for m in messages) != self.tokens:
            raise StoreError(f"session {session_id}: its ready conversation does not add up")
        return messages

    def decoded_turn(self, session_id: str) -> tuple[Message, ...]:
        from agentctl.store.codec import decode_messages

        return decode_messages(self.turn, where=f"session {session_id}")

    def row(self) -> tuple[str, int, int, int, str, str, str, int]:
        """The fields in order, as SQL backends store them (`from_row` reads them back)."""
        return (
            self.owner,
            self.tip,
            self.count,
            self.tokens,
            self.turn,
            self.stored,
            self.wire,
            self.check,
        )

    def document(self) -> bytes:
        """One file (JSON lines): a JSON header line, then the three texts back to back."""
        header = {
            "owner": self.owner,
            "tip": self.tip,
            "count": self.count,
            "tokens": self.tokens,
            "check": self.check,
            "lengths": [len(self.turn), len(self.stored)],
        }
        text = json.dumps(header) + "\n" + self.turn + self.stored + self.wire
        return text.encode("utf-8", "surrogatepass")


def from_row(row: Sequence[object]) -> ReadyConversation | None:
    """A stored copy, or None when its fields are not of their types (it is then not used)."""
    kinds = (str, int, int, int, str, str, str, int)
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
        turn_length, stored_length = header["lengths"]
        fields = (
            header["owner"],
            header["tip"],
            header["count"],
            header["tokens"],
            rest[:turn_length],
            rest[turn_length : turn_length + stored_length],
            rest[turn_length + stored_length :],
            header["check"],
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return from_row(fields)


def owner_of(info: SessionInfo) -> str:
    return f"{info.id} {info.created_at}"


def wire_array(messages: Sequence[Message]) -> str:
    """The messages as the request's JSON array, serialised as the openai SDK serialises."""
    return json.dumps([m.to_openai() for m in messages], ensure_ascii=False, separators=(",", ":"))


def _check(owner: str, tip: int, count: int, tokens: int, turn: str, stored: str, wire: str) -> int:
    head = f"{READY_VERSION}:{owner}:{tip}:{count}:{tokens}:{len(turn)}:{len(stored)}:"
    crc = zlib.crc32(head.encode())
    for text in (turn, stored, wire):
        crc = zlib.crc32(text.encode("utf-8", "surrogatepass"), crc)
    return crc


def load_head(store: Store, session_id: str) -> Session:
    """The session at its head for the next request: from the ready conversation when it is
    the head's, else from the messages."""
    from agentctl.state import Session

    ready = store.ready_conversation(session_id)
    if ready is not None:
        head, info = store.head(session_id), store.info(session_id)
        if ready.tip == head.message_tip and ready.owner == owner_of(info) and ready.sound():
            return Session(info, head, ready=ready)
    return store.load(session_id)


def keep_ready(store: Store, session: Session) -> None:
    """Leave `session`'s conversation ready for the next resume (the runner calls this when a
    run stops). A failure to write it costs the next resume time, nothing else: ignored."""
    from agentctl.errors import StoreError

    tip = session.checkpoint.message_tip
    if tip is None or session.ready_tip == tip or session.message_count < READY_MIN_MESSAGES:
        return
    try:
        ready = ReadyConversation.of(session.info, session.messages, tip)
        store.keep_ready(session.info.id, ready)
    except StoreError:
        pass
