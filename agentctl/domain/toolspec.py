"""A tool as the model is offered it, in no provider's form (issue 23 item 2).

Work tools (tools/), the control tools (loop/prompts.py), the registry, the runner, token
counts and `agentctl tools` / `mcp check` all hold this value; only llm/ puts the list in its
wire form (llm/chat_form.py: what the OpenAI adapter sends and the count counts). Plain data,
no pydantic: the tools package imports it, and commands that call no model must stay light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ToolSpec:
    """A tool's name, what it does, and the JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]
