"""Trust: what a session may do on this machine is its user's word, never the session's own.

A session carries settings that grant authority: the workspace its tools work in, `allow`
rules that skip the question, `pass_env` that hands secrets to shell commands, the sandbox and
network its commands get, the MCP servers it starts, and its model (a script is a model
whoever wrote the file wrote). A session that arrives from elsewhere (an
import, a move, a shared store another user writes) must not grant itself any of that, and a
store cannot say who wrote it: whoever can write a store can write any field of it.

So the grant is kept outside every store, in this user's data folder: one small private file
per session, saying "this user took this session's settings, exactly these (a digest), from
checkpoint N on". `run` and `fork` write it for the sessions they make (`own`), and it follows
a session the user moves or copies to another store; `resume` continues any other session only
once the user accepted its settings (`--accept-settings`, or yes at the terminal), and an
approval asked before that checkpoint never counts. A session whose settings changed since (a
store written behind the user's back) is asked about again, and checkpoints an import adds to
a session count for approvals only from the new head on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentctl.config import Settings
    from agentctl.domain.session import SessionInfo, Task

FOLDER = "trust"


@dataclass(frozen=True)
class Trust:
    """This user's grant for one session in one store."""

    own: bool  # made here by this user (run, fork, move of their own); else accepted
    since: int  # approvals asked before this checkpoint never count (0: all of its own)


def settings_of(info: SessionInfo) -> dict[str, Any]:
    """The settings of a session that carry authority: what is shown and what is accepted."""
    script = info.spec.script
    spec = info.spec
    return {
        "workspace": info.workspace,
        "allow": list(spec.allow),
        "pass_env": list(spec.pass_env),
        "sandbox": spec.sandbox,  # a file asking for none, or for the network, asks for more
        "network": spec.network,
        "mcp": None if spec.mcp is None else list(spec.mcp),
        "mcp_servers": spec.mcp_servers,  # commands agentctl would start
        "model": info.model,
        "script": None
        if script is None
        else hashlib.sha256(
            json.dumps([t.model_dump(mode="json") for t in script], sort_keys=True).encode()
        ).hexdigest(),
    }


def counting_from(task: Task, head: int) -> int:
    """The checkpoint after which this user's approvals count, for a session taken as it
    arrived at `head`: past the head and past every checkpoint number its state names. A grant
    or an answer dated after the checkpoint that carries it was written by hand (a real one is
    dated where it was recorded), and must never come to count when the session gets there."""
    numbers = [head, *(g.at for g in task.grants)]
    if task.approval is not None:
        numbers.append(task.approval.asked_at + 1)
    return max(numbers)


def revoke(settings: Settings, session_id: str) -> None:
    """Forget this user's grant for the session: it is asked for again."""
    import contextlib

    with contextlib.suppress(FileNotFoundError):
        _where(settings, session_id).unlink()


def describe(info: SessionInfo) -> str:
    """The settings in one line, as `show` and the question put them."""
    allow = ", ".join(info.spec.allow) or "none"
    pass_env = ", ".join(info.spec.pass_env) or "none"
    model = info.model + (" (a script that came with the session)" if info.spec.script else "")
    workspace = info.workspace or "(none recorded: the current folder)"
    spec = info.spec
    shown = f"workspace {workspace}; allow: {allow}; pass_env: {pass_env}; model {model}"
    if spec.sandbox is not None or spec.network is not None:
        network = {None: "as configured", True: "yes", False: "no"}[spec.network]
        shown += f"; sandbox {spec.sandbox or 'as configured'}, network {network}"
    if spec.mcp is not None:
        shown += f"; MCP servers of your settings: {', '.join(spec.mcp) or 'none'}"
    for name, server in sorted(spec.mcp_servers.items()):
        shown += f"; its own MCP server {name}: {json.dumps(server, sort_keys=True)}"
    return shown


def digest(info: SessionInfo) -> str:
    text = json.dumps(settings_of(info), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _where(settings: Settings, session_id: str) -> Path:
    """The grant's file: by session id, whichever store holds it (ids are random and a moved
    or copied store keeps them; what the grant covers is bound by the digest)."""
    name = hashlib.sha256(session_id.encode()).hexdigest()[:32]
    return settings.home / FOLDER / name


def lookup(settings: Settings, info: SessionInfo) -> Trust | None:
    """This user's grant for the session as it is now; None when there is none, or when its
    settings are not the ones that were accepted."""
    path = _where(settings, info.id)
    try:
        entry = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None  # none, or unreadable: not accepted (asked again, which is safe)
    if not isinstance(entry, dict):
        return None
    own, since = entry.get("own"), entry.get("since")
    if (
        entry.get("session") != info.id
        or entry.get("digest") != digest(info)
        or not isinstance(own, bool)
        or not isinstance(since, int)
        or isinstance(since, bool)
    ):
        return None
    return Trust(own=own, since=since)


def grant(settings: Settings, info: SessionInfo, trust: Trust) -> None:
    """Record this user's grant for the session (private, written whole or not at all)."""
    from agentctl.atomic import write_private

    path = _where(settings, info.id)
    entry = {
        "session": info.id,
        "digest": digest(info),
        "own": trust.own,
        "since": trust.since,
    }
    write_private(path, json.dumps(entry).encode())
