"""The PostgreSQL append's one statement and its parameters (store/postgres.py sends them).

The statement moves the session's head only if it is still the expected head and the writer's
lease is valid by the server's clock, and inserts the messages and the checkpoint only from that
moved row: zero rows written means the fence refused it. It is the checkpoint's INSERT, so its
answer is a command tag (rows written), not a result set to describe, send and read.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agentctl.store.postgres_migrations import S

if TYPE_CHECKING:
    from agentctl.store.base import AppendPlan

# The append: $1 session, $2 expected head, $3 new checkpoint id, $4 lease token, $5 parent,
# $6 event, $7 from state, $8 to state, $9 time, $10 outcome, $11 detail, $12 task, $13 usage,
# $14 message tip; then id, parent and body of each message ($15, $16, $17, ...).
_MOVE_HEAD = f"""
WITH moved AS (
    UPDATE {S}.sessions SET head = $3, state = $8, updated_at = $9, outcome = $10
    WHERE id = $1 AND head = $2 AND CASE
        WHEN $4::text IS NULL THEN lease_token IS NULL OR lease_expires <= clock_timestamp()
        ELSE lease_token = $4 AND lease_expires > clock_timestamp()
    END
    RETURNING id
){{messages}}
INSERT INTO {S}.checkpoints (session_id, id, parent, event, from_state, to_state, created_at,
    detail, task, usage, message_tip)
SELECT moved.id, $3, $5, $6, $7, $8, $9, $11, $12, $13, $14 FROM moved
"""
_APPENDS: dict[int, str] = {}
_FIRST_MESSAGE = 15  # the placeholder of the first message's id


def append_sql(messages: int) -> str:
    """The one fenced statement of an append adding `messages` messages, with PostgreSQL's own
    $n placeholders (psycopg's RawCursor sends it as it is: nothing to rewrite per call). The
    messages are rows of a VALUES list (one statement text per count, each prepared once by
    psycopg): cheaper to send than arrays, which psycopg adapts element by element in Python."""
    if messages not in _APPENDS:
        rows = ", ".join(
            f"(${n}::integer, ${n + 1}::integer, ${n + 2}::text)"
            for n in range(_FIRST_MESSAGE, _FIRST_MESSAGE + 3 * messages, 3)
        )
        part = (
            f""", new_messages AS (
    INSERT INTO {S}.messages (session_id, id, parent, body)
    SELECT moved.id, m.id, m.parent, m.body FROM moved, (VALUES {rows}) AS m (id, parent, body)
)"""
            if messages
            else ""
        )
        _APPENDS[messages] = _MOVE_HEAD.replace("{messages}", part)
    return _APPENDS[messages]


def append_params(
    session_id: str, expected_head: int, plan: AppendPlan, token: str | None
) -> list[Any]:
    """The parameters of append_sql(len(plan.messages)), in its order."""
    from agentctl.store.codec import encode

    c = plan.checkpoint
    params: list[Any] = [
        session_id,
        expected_head,
        c.id,
        token,
        c.parent,
        c.kind.value,
        c.from_state.value,
        c.to_state.value,
        c.created_at,
        c.task.outcome.value if c.task.outcome else None,
        json.dumps(c.detail) if c.detail else "{}",
        encode(c.task),
        encode(c.usage),
        c.message_tip,
    ]
    for m in plan.messages:
        params += (m.id, m.parent, encode(m.message))
    return params
