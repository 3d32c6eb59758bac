"""The Chat Completions form of the tools offered and of a tool call's fields, shared by the
OpenAI adapter (openai_chat.py, which sends it) and the token count (loop/context.py, which
counts what is sent: the cookbook's figure is of this form). The loop holds provider-neutral
values (domain/toolspec.py's ToolSpec, domain/session.py's ToolCall) and does not import the
adapter; nothing outside llm/ words or reads the `"function"` wrapper (tests/test_architecture).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agentctl.domain.toolspec import ToolSpec

Json = dict[str, Any]

# What openai_chat.wire_call sets over a call's provider data; the rest of it is sent as is.
CALL_FIELDS = ("id", "type", "function")


def sent_provider_data(provider_data: Json | None) -> Json:
    """What of a tool call's provider data goes to the server with it (counted, too)."""
    return {k: v for k, v in (provider_data or {}).items() if k not in CALL_FIELDS}


def wire_tool(tool: ToolSpec) -> Json:
    """A tool offered, as Chat Completions takes it."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def wire_tools(tools: Sequence[ToolSpec]) -> list[Json]:
    return [wire_tool(t) for t in tools]


def tools_text(tools: Sequence[ToolSpec]) -> str:
    """What the tools offered are counted as (loop/context.py count_text): their wire form's
    JSON, the tokens they take of every call."""
    return json.dumps(wire_tools(tools))


def tool_text(tool: ToolSpec) -> str:
    """What one tool offered is counted as (`mcp check`'s figure for each tool)."""
    return json.dumps(wire_tool(tool))
