"""The --json forms of the commands that print a result: one strict JSON document on stdout.

Their keys are a contract that scripts read (the tests hold them): an identifier renamed
inside agentctl leaves every key here as it was. Strict JSON, outside text escaped.
"""

from __future__ import annotations

import json
import math
import sys
from typing import TYPE_CHECKING, Any

from agentctl.terminal.render import UNSAFE

if TYPE_CHECKING:
    from pathlib import Path

    from agentctl.domain.records import (
        ConfigRow,
        McpServerRow,
        McpToolRow,
        SearchHit,
        SessionReport,
        SessionView,
        ToolInfo,
        UsageRow,
        WorkspaceDiff,
    )
    from agentctl.domain.session import UserProfile
    from agentctl.store.base import CheckpointSummary, SessionSummary


def print_json(value: Any) -> None:
    """Strict JSON (RFC 8259): a number that is not finite (a price of `inf` in an older
    settings file, a NaN a model put in its arguments) is null, never `Infinity` or `NaN`.
    json.dumps escapes C0 controls; C1 controls and bidi overrides are escaped here."""
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(finite(value), indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write(UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def finite(value: Any) -> Any:
    """`value` with every float that is not finite replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def summary_json(s: SessionSummary, place: Any = None) -> dict[str, Any]:
    queue = None
    if place is not None:
        queue = {
            "queue": place.queue,
            "status": place.status,
            "worker": place.worker,
            "priority": place.priority,
            "error": place.error,
        }
    return {
        "queue": queue,
        "id": s.id,
        "name": s.name,
        "tags": list(s.tags),
        "workspace": s.workspace,
        "state": s.state,
        "goal": s.goal,
        "title": s.title,
        "head": s.head,
        "outcome": s.outcome,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }


def checkpoint_json(c: CheckpointSummary) -> dict[str, Any]:
    return {
        "id": c.id,
        "parent": c.parent,
        "event": c.kind,
        "from_state": c.from_state,
        "to_state": c.to_state,
        "created_at": c.created_at,
        "detail": c.detail,
    }


def config_json(path: Path, rows: list[ConfigRow]) -> dict[str, Any]:
    return {
        "path": str(path),
        "settings": {r.key: {"value": r.value, "source": r.source} for r in rows},
    }


def session_json(view: SessionView) -> dict[str, Any]:
    s, budget = view.session, view.budget
    c = s.checkpoint
    return {
        "id": s.info.id,
        "state": s.state.value,
        "head": c.id,
        "checkpoint": {
            "id": c.id,
            "parent": c.parent,
            "event": c.kind,
            "created_at": c.created_at,
        },
        "model": s.info.model,
        "created_at": s.info.created_at,
        "task": c.task.model_dump(mode="json") | {"current_step": c.task.current_step},
        "usage": c.usage.model_dump(mode="json"),
        "snapshot_bytes": view.snapshot_bytes,
        "forked_from": s.info.forked_from,
        "forks": list(view.forks),
        "sandbox": s.info.sandbox,
        "network": s.info.network,
        "workspace": s.info.workspace,
        "allow": list(s.info.spec.allow),
        "pass_env": list(s.info.spec.pass_env),
        "script": s.info.spec.script is not None,
        "settings": view.trust,  # own, accepted, or null: resume asks before they count
        "context_tokens": s.context_tokens,
        "context": {
            "tokens": s.context_tokens,
            "tools_tokens": c.task.tools_tokens,
            "token_ratio": c.task.token_ratio,
            "budget": budget.prompt_limit,
            "window": budget.window,
            "reply_reserve": budget.reply_reserve,
            "window_source": budget.source,
            "strategy": view.strategy,
            "tokenizer": s.info.tokenizer,
            "approximate": s.info.approximate_tokens,
        },
        "messages": [m.model_dump(mode="json", exclude_defaults=True) for m in s.messages],
    }


def tools_json(tools: list[ToolInfo]) -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "description": t.description,
            "side_effect": t.side_effect,
            "approval": t.approval,
            "arguments": [
                {
                    "name": a.name,
                    "type": a.type,
                    "required": a.required,
                    "description": a.description,
                    "default": a.default,
                }
                for a in t.arguments
            ],
        }
        for t in tools
    ]


def mcp_servers_json(rows: list[McpServerRow]) -> list[dict[str, Any]]:
    return [dict(r.__dict__) for r in rows]


def mcp_check_json(server: McpServerRow, tools: list[McpToolRow], info: str) -> dict[str, Any]:
    return {
        "server": dict(server.__dict__),
        "info": info,
        "tools": [dict(t.__dict__) for t in tools],
        "tokens": sum(t.tokens for t in tools),
    }


# -- what each command prints with --json --------------------------------------------------


def sessions(listed: list[SessionSummary], queued: dict[str, Any]) -> None:
    """`list --json`: each session with its place in a worker queue (null: none)."""
    print_json([summary_json(s, queued.get(s.id)) for s in listed])


def history(checkpoints: list[CheckpointSummary], limit: int | None) -> None:
    """`history --json`: every checkpoint (the newest `limit` with --limit)."""
    shown = checkpoints[-limit:] if limit else checkpoints
    print_json([checkpoint_json(c) for c in shown])


def session(view: SessionView) -> None:
    """`show --json`."""
    print_json(session_json(view))


def tools(listed: list[ToolInfo]) -> None:
    """`tools --json`."""
    print_json(tools_json(listed))


def mcp_servers(rows: list[McpServerRow]) -> None:
    """`mcp list --json`."""
    print_json(mcp_servers_json(rows))


def mcp_check(server: McpServerRow, found: list[McpToolRow], info: str) -> None:
    """`mcp check --json`."""
    print_json(mcp_check_json(server, found, info))


def verify(store_problems: list[str], reports: list[SessionReport]) -> None:
    """`verify --json`: the store's problems, and each session's."""
    print_json(
        {
            "store": store_problems,
            "sessions": [
                {"id": r.session_id, "checkpoints": r.checkpoints, "problems": r.problems}
                for r in reports
            ],
        }
    )


def profile(shown: UserProfile) -> None:
    """`profile show --json`."""
    print_json(shown.model_dump(mode="json"))


def config(path: Path, rows: list[ConfigRow]) -> None:
    """`config show --json`."""
    print_json(config_json(path, rows))


def queued(session_id: str) -> None:
    """`run --detach --json`, `resume --detach --json`, `answer --json`."""
    print_json({"session_id": session_id, "status": "queued"})


def usage(rows: list[UsageRow], by: str) -> None:
    """`usage --json`: one object per group, keyed by what it groups by."""
    print_json(
        [
            {
                by: r.key,
                "sessions": r.sessions,
                "calls": r.calls,
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "cost_usd": None if r.cost is None else round(r.cost, 6),
            }
            for r in rows
        ]
    )


def search(hits: list[SearchHit]) -> None:
    """`search --json`: the snippets without their match marks."""
    from agentctl.domain.records import HIT_END, HIT_START

    print_json(
        [
            {
                "session": h.session_id,
                "checkpoint": h.checkpoint,
                "role": h.role,
                "snippet": h.snippet.replace(HIT_START, "").replace(HIT_END, ""),
            }
            for h in hits
        ]
    )


def diff(changes: WorkspaceDiff) -> None:
    """`diff --json`: the files and the unified diff."""
    print_json(
        {
            "session": changes.session_id,
            "from": changes.old,
            "to": changes.new,
            "files": [{"status": s, "path": p} for s, p in changes.files],
            "diff": changes.text,
        }
    )
