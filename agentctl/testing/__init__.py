"""Helpers for tests of code that uses agentctl: nothing in agentctl itself imports this.

`CharCounter` counts tokens without tiktoken (4 characters a token), so tests that do not care
about exact counts need no vocabulary. `ScriptedClient` is a model client in this process that
fails loudly, for runner unit tests; adapter, sample and process tests use the scripted HTTP
server (scripted.py) and the real `openai` client instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from agentctl.domain.session import Message, Prepared, Usage
from agentctl.domain.toolspec import ToolSpec
from agentctl.llm.openai_chat import FORMAT, ModelReply, prepare, wire_conversation, wire_message
from agentctl.loop.context import TOKENS_PER_MESSAGE


class CharCounter:
    """A dependency-free estimate (4 characters a token of the message's JSON as it is
    sent), for tests that do not care."""

    approximate = True
    encoding_name = "chars/4"

    def count(self, message: Message) -> int:
        return TOKENS_PER_MESSAGE + len(json.dumps(wire_message(message))) // 4

    def bound(self, message: Message) -> int:
        return self.count(message)

    def count_text(self, text: str) -> int:
        return TOKENS_PER_MESSAGE + len(json.dumps({"content": text})) // 4

    def bound_text(self, text: str) -> int:
        return self.count_text(text)


class Answer:
    """A reply made when it is collected (ScriptedClient's PendingReply)."""

    def __init__(self, make: Callable[[Callable[[str], None]], ModelReply]) -> None:
        self._make = make
        self.cancelled = False

    def collect(self, on_text: Callable[[str], None]) -> ModelReply:
        return self._make(on_text)

    def cancel(self) -> None:
        self.cancelled = True


class ScriptedClient:
    """A ModelClient in this process, for runner unit tests: each call takes the next reply.
    It fails loudly: a call with no reply left raises, naming the call and what it was sent;
    `assert_consumed` raises when replies are left over (a turn the runner skipped)."""

    name = "scripted-in-process"
    format = FORMAT  # it keeps what the OpenAI adapter would send

    def prepare(self, messages: Sequence[Message]) -> Prepared:
        return prepare(messages)

    def __init__(self, replies: Sequence[Message]) -> None:
        self._replies = list(replies)
        self.requests: list[list[dict[str, Any]]] = []

    def send(
        self,
        messages: Sequence[Message] | Prepared,
        tools: Sequence[ToolSpec],
        max_tokens: int | None = None,
        refused: Sequence[str] = (),
    ) -> Answer:
        # Kept as the OpenAI adapter sends them, a conversation kept ready too.
        sent = wire_conversation(messages)
        self.requests.append(sent)
        if not self._replies:
            last = sent[-1] if sent else {}
            raise AssertionError(
                f"unexpected model call #{len(self.requests)}; the last message sent was "
                f"{last.get('role')}: {str(last.get('content'))[:200]!r}"
            )
        reply = self._replies.pop(0)
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")

        def answer(on_text: Callable[[str], None]) -> ModelReply:
            if reply.content:
                on_text(reply.content)
            return ModelReply(reply.model_copy(update={"finish_reason": finish}), Usage(calls=1))

        return Answer(answer)

    def assert_consumed(self) -> None:
        if self._replies:
            raise AssertionError(f"{len(self._replies)} scripted replies were never asked for")
