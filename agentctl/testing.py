"""Helpers for tests of code that uses agentctl: nothing in agentctl itself imports this.

`CharCounter` counts tokens without tiktoken (4 characters a token), so tests that do not care
about exact counts need no vocabulary.
"""

from __future__ import annotations

import json
from typing import Any

from agentctl.context import TOKENS_PER_MESSAGE


class CharCounter:
    """A dependency-free estimate (4 characters a token), for tests that do not care."""

    approximate = True
    encoding_name = "chars/4"

    def count(self, message: dict[str, Any]) -> int:
        return TOKENS_PER_MESSAGE + len(json.dumps(message)) // 4
