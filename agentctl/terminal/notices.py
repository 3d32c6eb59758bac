"""What a command says it did, or why it stopped: a session's result, a setting written, a
rollback, an import, a move, a fork, a session queued, deleted, named or tagged, a run paused
or interrupted. Results go to stdout; notes and the next command to try go to stderr."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agentctl.terminal.render import (
    error,
    escape,
    flat,
    human_bytes,
    note,
    out,
    plain,
    plural,
    try_next,
)

if TYPE_CHECKING:
    from pathlib import Path

    from agentctl.domain.records import ImportReport, McpServerRow, MoveReport, RollbackReport


def result(text: str | None) -> None:
    """A session's result on stdout: the model's words, printed as they are."""
    plain(out, text or "(no result)")


def setting_written(key: str, value: str | None, path: Path | None) -> None:
    """`config set`/`profile set` echo: the value as data, never markup."""
    shown = "removed" if value is None else f"= {escape(value)}"
    where = f"  [dim]({escape(str(path))})[/]" if path else ""
    out.print(f"{escape(key)} {shown}{where}")


def rolled_back(report: RollbackReport) -> None:
    head = report.head
    if report.dry_run:
        out.print(f"a rollback to checkpoint {report.target} would change:")
    elif report.conversation:
        out.print(
            f"session rolled back to checkpoint {report.target} ({head.to_state.value}); "
            f"new head is checkpoint {head.id}"
        )
    else:
        out.print(
            f"workspace files put back as at checkpoint {report.target}; the conversation "
            f"stays (new head is checkpoint {head.id})"
        )
    if report.files is not None:
        if report.forward:  # to a later checkpoint (another branch): nothing is "reverted"
            verbs = {"A": "added", "D": "removed", "M": "updated", "T": "updated"}
        else:
            verbs = {"A": "restored", "D": "removed", "M": "reverted", "T": "reverted"}
        for status, path in report.files[:50]:
            out.print(f"  {verbs.get(status, status)}  {escape(flat(path))}")
        if len(report.files) > 50:
            out.print(f"  … and {len(report.files) - 50} more")
        if not report.files:
            out.print("  no files differ")
    if report.not_restored:
        names = ", ".join(flat(n) for n in report.not_restored[:10])
        more = f" and {len(report.not_restored) - 10} more" if len(report.not_restored) > 10 else ""
        note(
            "left as they are (not captured now: ignored, over a snapshot cap, agentctl's own, "
            f"or a name git refuses): {names}{more}"
        )
    if report.files_note:
        note(report.files_note)
    if report.kept_preferences:
        names = ", ".join(report.kept_preferences)
        note(
            f"preferences remembered after checkpoint {report.target} stay in your profile: "
            f"{names} (agentctl profile unset KEY removes one)"
        )
    commands, calls = report.commands, report.outside_calls
    if commands:
        count = len(commands)
        listed = "; ".join(commands[:5]) + (" …" if count > 5 else "")
        note(
            f"{count} command{'s' if count > 1 else ''} after checkpoint {report.target} ran "
            f"unsandboxed or with network and may have changed things outside the workspace, "
            f"which a rollback cannot undo: {listed}"
        )
    if calls:
        count = len(calls)
        listed = ", ".join(calls[:5]) + (" …" if count > 5 else "")
        note(
            f"{count} tool call{'s' if count > 1 else ''} after checkpoint {report.target} may "
            "have changed things outside the workspace (the workspace files are restored), "
            f"which a rollback cannot undo: {listed}"
        )


def imported(report: ImportReport) -> None:
    sid = escape(report.session_id)
    source = escape(report.source_id)
    renamed = f" (exported as {source})" if report.source_id != report.session_id else ""
    if report.added == 0:
        out.print(
            f"session {sid}{renamed} is already here, all {report.checkpoints} "
            "checkpoints; nothing to import"
        )
        return
    out.print(
        f"imported session {sid}{renamed}: {report.added} of "
        f"{report.checkpoints} checkpoints, verified"
    )
    if report.settings:
        out.print(f"its settings: {escape(report.settings)}")
        out.print(
            "it grants itself nothing: resume shows these and asks you to accept them "
            f"(agentctl resume {sid} --accept-settings)"
        )


def moved(report: MoveReport) -> None:
    out.print(
        f"moved session {escape(report.session_id)} ({report.checkpoints} checkpoints, "
        "verified) to "
        f"{escape(report.to)}; this store keeps a read-only record of it"
    )
    try_next(report.resume)


def forked(new_id: str, at: int) -> None:
    out.print(f"forked: session {new_id}, from checkpoint {at}")
    try_next(f"agentctl resume {new_id}")


# -- a run that stopped short of done ---------------------------------------------------------


def paused(session_id: str, question: str, kept: bool) -> None:
    """A session waits for an answer: the question, and how to give it (where it is kept)."""
    note(f"session {session_id} is waiting for input: {question}")
    if kept:
        note(f'answer with: agentctl resume {session_id} --input "…"')
    else:
        note("the memory: store keeps nothing after this command: it cannot go on")


def stopped(session_id: str, last_error: str | None, kept: bool) -> None:
    """A run stopped on an error: the error, and the command that continues it."""
    error(last_error or "stopped", f"agentctl resume {session_id}" if kept else None)


def output_closed(session_id: str | None, kept: bool) -> None:
    """stdout's reader went away (`agentctl run … | head`): stopped, saved, said on stderr."""
    if session_id and kept:
        note(f"output closed: stopped, saved; continue with: agentctl resume {session_id}")


def interrupted(session_id: str | None, kept: bool, elsewhere: bool) -> None:
    """Ctrl-C, SIGTERM or SIGHUP during a run (or while following one run elsewhere)."""
    if elsewhere:  # following a session another process runs: nothing stopped there
        error("stopped following; the session goes on where it runs")
        if session_id:
            note(f"follow it again with: agentctl watch {session_id}")
        return
    if not kept:
        error("interrupted; the memory: store keeps nothing after this command")
        return
    error("interrupted; everything up to the last step is saved")
    if session_id:
        note(f"continue with: agentctl resume {session_id}")


def internal_error(exc: Exception) -> None:
    """What escaped every handler: one line that names it a bug, not a traceback."""
    error(
        f"internal error ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        " — this is a bug in agentctl",
        "rerun with --debug to see where, and report it",
    )


# -- sessions queued, moved about, named, deleted ---------------------------------------------


def queued(session_id: str) -> None:
    """A session queued for a worker: its id on stdout, how to follow it on stderr."""
    print(session_id)
    note(f"queued for a worker (agentctl worker); follow it: agentctl watch {session_id}")


def export_text(text: str) -> None:
    """A part of an export (whole lines) on stdout, as it is made."""
    sys.stdout.write(text)


def exported(session_id: str, checkpoints: int, to: Path | None) -> None:
    """An export: where the file was written (on stdout, its lines were the output)."""
    if to is not None:
        note(f"exported session {session_id} ({checkpoints} checkpoints) to {to}")


def renamed(session_id: str, name: str) -> None:
    note(f"session {session_id} is named {name!r}")


def tagged(tags: Sequence[str]) -> None:
    """A session's tags after `tag` added or removed some."""
    note(f"tags: {', '.join(tags) if tags else '(none)'}")


def deleted(session_ids: list[str]) -> None:
    note(f"deleted {', '.join(session_ids)}")


def pruned(count: int) -> None:
    note(f"deleted {plural(count, 'session')}")


def snapshots_given_back(freed: int) -> None:
    note(f"gave back {human_bytes(freed)} of workspace snapshots")


# -- MCP servers in the settings file ---------------------------------------------------------


def mcp_added(row: McpServerRow, path: Path) -> None:
    note(f"added MCP server {row.name} ({row.transport}: {row.target}) to {path}")


def mcp_removed(name: str, path: Path) -> None:
    note(f"removed MCP server {name} from {path}")


def mcp_imported(added: list[str]) -> None:
    note(f"imported {len(added)} MCP server(s): {', '.join(added) or 'none'}")


def version(number: str) -> None:
    sys.stdout.write(f"agentctl {number}\n")
