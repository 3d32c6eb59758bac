"""`history` and `history --graph` of long sessions (issue 30 item 3): piped, lines are plain
text written as they are made, exactly the text a terminal shows without its styles; the graph
is as wide as the branches alive at once and folds long linear stretches; --limit shows the
newest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.markup import render as rich_render

from agentctl.config import Settings
from agentctl.domain.checkpoints import RollbackDetail
from agentctl.domain.lifecycle import CheckpointKind, State
from agentctl.domain.session import SessionInfo, Task, TaskSpec, Usage
from agentctl.store import open_store
from agentctl.store.base import CheckpointDraft, CheckpointSummary
from agentctl.terminal import history_view, render
from tests.conftest import run

HOSTILE = ["[bold]x[/bold]", "list[str]", "a\\", "\\[red]", "\\\\[dim]y", "\x1b[2J", "[/]"]
HOSTILE += ["\u202e", "\\[", "x\\"]


def rich_plain(markup: str) -> str:
    return rich_render(markup, emoji=False).plain


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="[]\\/ab#@=\x1b ", max_size=12), min_size=1, max_size=4))
def test_plain_text_is_the_text_rich_shows(pieces: list[str]) -> None:
    markup = "".join(f"[dim]{render.escape(p)}[/] [bold]{render.escape(p)}[/]" for p in pieces)
    assert render.plain_text(markup) == rich_plain(markup)


def summary(n: int, parent: int | None, kind: str, detail: dict[str, object]) -> CheckpointSummary:
    return CheckpointSummary(
        n, parent, kind, "executing", "executing", f"2026-01-01T00:00:{n % 60:02d}", detail
    )


def hostile_history() -> list[CheckpointSummary]:
    rows = [CheckpointSummary(1, None, "new_task", "idle", "planning", "2026-01-01T00:00:00", {})]
    for n, text in enumerate(HOSTILE * 3, start=2):
        rows.append(
            summary(n, n - 1, "tool_result", {"tool": text, "error": True, "message": text})
        )
    rows.append(summary(len(rows) + 1, 3, "rollback", {"to": 3, "from": len(rows)}))
    rows.append(summary(len(rows) + 1, len(rows), "step_complete", {"step": "[x", "summary": "\\"}))
    return rows


def test_piped_history_is_what_a_terminal_shows_without_its_styles() -> None:
    rows = hostile_history()
    for lines in (
        lambda markup: history_view.history_lines("s[1]\x1b", rows, None, markup),
        lambda markup: history_view.history_lines("s1", rows, 5, markup),
        lambda markup: history_view.graph_lines("s1", rows, None, True, markup),
        lambda markup: history_view.graph_lines("s1", rows, 4, False, markup),
    ):
        plain = list(lines(False))
        assert plain == [rich_plain(line) for line in lines(True)]
        assert not any("\x1b" in line or "\u202e" in line for line in plain)


def branchy(branches: int, run_length: int = 20) -> list[CheckpointSummary]:
    """A session that abandons a branch of `run_length` checkpoints `branches` times."""
    rows = [CheckpointSummary(1, None, "new_task", "idle", "planning", "2026-01-01T00:00:00", {})]
    for _ in range(branches):
        fork_from = rows[-1].id
        for k in range(run_length):
            rows.append(summary(len(rows) + 1, len(rows) if k else fork_from, "tool_result", {}))
        back = len(rows) + 1
        rows.append(summary(back, fork_from, "rollback", {"to": fork_from, "from": back - 1}))
        for _ in range(run_length):
            rows.append(summary(len(rows) + 1, len(rows), "tool_result", {}))
    return rows


def test_the_graph_is_as_wide_as_the_branches_alive_at_once_and_folds_long_runs() -> None:
    rows = branchy(40)
    lines = list(history_view.graph_lines("s1", rows, markup=False))[1:]
    # Every abandoned branch ended before the next began: one column beside the trunk (it
    # was one column per branch ever made: 41).
    assert max(history_view.graph_lanes(rows)) == 1
    assert all(line[3:5] == "  " and line[1] == " " for line in lines), lines[:10]
    assert len(lines) < len(rows) // 3  # 1,641 checkpoints, a few hundred lines
    folded = [line for line in lines if line[5:].startswith("… ")]
    shown = [line for line in lines if not line[5:].startswith("… ")]
    assert sum(int(line[7:].split()[0]) for line in folded) + len(shown) == len(rows)
    assert sum("(from #" in line for line in lines) == 40  # every rollback is still drawn
    assert lines[-1].endswith("← head")


def test_the_graph_draws_the_newest_checkpoints_with_limit() -> None:
    rows = branchy(3)
    lines = list(history_view.graph_lines("s1", rows, limit=10, fold=False, markup=False))
    assert lines[1] == f"… {len(rows) - 10} earlier checkpoints (--limit)"
    assert len(lines) == 12
    assert lines[-1].endswith("← head")


def test_history_limit_shows_the_newest_checkpoints(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'agentctl.db'}"
    store = open_store(url)
    info = SessionInfo(id="long0001", spec=TaskSpec(goal="g"), model="m", created_at="t")
    drafts = [
        CheckpointDraft(
            None, CheckpointKind.NEW_TASK, State.IDLE, State.PLANNING, "t", Task(goal="g"),
            Usage(),
        )
    ]  # fmt: skip
    for n in range(2, 301):
        kind = CheckpointKind.ROLLBACK if n == 150 else CheckpointKind.TOOL_RESULT
        detail = RollbackDetail(100, 149) if n == 150 else None
        drafts.append(
            CheckpointDraft(
                100 if n == 150 else n - 1, kind, State.PLANNING, State.PLANNING,
                f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}", Task(goal="g"), Usage(),
                **({"detail": detail} if detail else {}),
            )
        )  # fmt: skip
    store.create_whole(info, drafts)
    store.close()
    env = {"AGENTCTL_STORE": url}
    shown = run("history", "long0001", "--limit", "20", env=env)
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[2] == "… 280 earlier checkpoints (--limit)"
    assert [line.split()[0] for line in lines[3:]] == [str(n) for n in range(281, 301)]
    assert len(run("history", "long0001", "--json", "-n", "5", env=env).json()) == 5
    graph = run("history", "long0001", "--graph", env=env).stdout.splitlines()
    assert len(graph) < 30  # 300 checkpoints, one branch: folded
    assert any("(from #100)" in line for line in graph)
    assert run("history", "long0001", "--limit", "0", env=env).code == 2


# -- the table read a page at a time (issue 30 item 3: first rows on a terminal) ----------------


def kept_long_session(tmp_path: Path, size: int = 700) -> str:
    """A SQLite session of `size` checkpoints with a rollback, a question and its answer (wide
    transitions late in it), its listing kept as a run that stops keeps it, then 30 more."""
    from agentctl.store.listing import keep_listing
    from agentctl.store.ready import owner_of

    url = f"sqlite://{tmp_path / 'agentctl.db'}"
    store = open_store(url)
    info = SessionInfo(id="long0001", spec=TaskSpec(goal="g"), model="m", created_at="t")
    k, s = CheckpointKind, State
    plan = [(k.NEW_TASK, s.IDLE, s.PLANNING), (k.PLAN_READY, s.PLANNING, s.EXECUTING)]
    drafts = [
        CheckpointDraft(
            None if n == 1 else n - 1, kind, before, after, f"2026-01-01T00:00:{n:02d}",
            Task(goal="g"), Usage(),
        )
        for n, (kind, before, after) in enumerate(plan, 1)
    ]  # fmt: skip

    def add(kind: CheckpointKind, before: State, after: State, **more: object) -> None:
        n = len(drafts) + 1
        parent = more.pop("parent", n - 1)
        drafts.append(
            CheckpointDraft(
                parent, kind, before, after,  # type: ignore[arg-type]
                f"2026-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}",
                Task(goal="g"), Usage(), **more,  # type: ignore[arg-type]
            )
        )  # fmt: skip

    while len(drafts) < size - 3:
        add(k.TOOL_RESULT, s.EXECUTING, s.EXECUTING)
    add(k.ROLLBACK, s.EXECUTING, s.EXECUTING, parent=100, detail=RollbackDetail(100, len(drafts)))
    add(k.NEEDS_INPUT, s.EXECUTING, s.WAITING_FEEDBACK)
    add(k.INPUT_RECEIVED, s.WAITING_FEEDBACK, s.EXECUTING)
    store.create_whole(info, drafts)
    keep_listing(store, "long0001", owner_of(store.info("long0001")), size)
    head = size
    for _ in range(30):
        store.append("long0001", head, replace_draft(drafts[-4], head))
        head += 1
    store.close()
    return url


def replace_draft(template: CheckpointDraft, head: int) -> CheckpointDraft:
    from dataclasses import replace

    return replace(template, parent=head, created_at=f"2026-01-02T00:00:{head % 60:02d}")


def test_the_table_read_a_page_at_a_time_is_the_table_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentctl.store.listing import outline
    from agentctl.usecases import inspect

    url = kept_long_session(tmp_path)
    store = open_store(url)
    shape = outline(store, "long0001")
    assert shape is not None  # the paged way is taken
    assert shape.head == 730
    whole = store.history("long0001")
    monkeypatch.setattr(inspect, "FIRST_PAGE", 7)
    monkeypatch.setattr(inspect, "PAGE", 50)
    settings = Settings.load({"AGENTCTL_STORE": url})
    for limit in (None, 1, 20, 729, 730, 5000):
        for markup in (True, False):
            made: list[str] = []
            inspect.show_history(
                settings,
                "long0001",
                limit,
                lambda sid, table: made.extend(history_view.table_lines(sid, table, markup)),  # noqa: B023
            )
            assert made == list(history_view.history_lines("long0001", whole, limit, markup))
    piped = run("history", "long0001", env={"AGENTCTL_STORE": url})
    assert piped.stdout.splitlines() == list(
        history_view.history_lines("long0001", whole, None, False)
    )


def test_the_first_screen_is_made_before_the_rest_of_the_history_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentctl.store.sqlite import SQLiteStore
    from agentctl.usecases import inspect

    url = kept_long_session(tmp_path)
    monkeypatch.setattr(inspect, "FIRST_PAGE", 40)
    read: list[int] = []
    page = SQLiteStore.history_page

    def counted(self: SQLiteStore, session_id: str, after: int = 0, limit: Any = None) -> Any:
        rows = page(self, session_id, after, limit)
        read.extend(c.id for c in rows)
        return rows

    monkeypatch.setattr(SQLiteStore, "history_page", counted)
    monkeypatch.setattr(SQLiteStore, "history", lambda *a, **k: pytest.fail("read whole"))
    at_row_30: list[int] = []

    def show(session_id: str, table: Any) -> None:
        for n, _line in enumerate(history_view.table_lines(session_id, table, True)):
            if n == 32:  # the title, the header and 30 rows
                at_row_30.append(len(read))

    inspect.show_history(Settings.load({"AGENTCTL_STORE": url}), "long0001", None, show)
    assert len(read) == 700 + 30 + 31  # every row in the end (the tail twice: it is small)
    assert at_row_30 == [31 + 40]  # by then: the rows after the listing, and the first page


def test_a_listing_that_does_not_record_its_transitions_is_read_whole(tmp_path: Path) -> None:
    import json
    import sqlite3

    from agentctl.store.listing import _check, outline

    url = kept_long_session(tmp_path)
    db = sqlite3.connect(tmp_path / "agentctl.db")
    owner, upto, body = db.execute("SELECT owner, upto, body FROM listing").fetchone()
    rows = json.loads(body)
    del rows[0]["transitions"]  # as the first listings of this layout were kept
    body = json.dumps(rows, separators=(",", ":"))
    db.execute("UPDATE listing SET body = ?, check_sum = ?", (body, _check(owner, upto, body)))
    db.commit()
    db.close()
    store = open_store(url)
    assert outline(store, "long0001") is None
    shown = run("history", "long0001", env={"AGENTCTL_STORE": url})
    whole = store.history("long0001")
    assert shown.stdout.splitlines() == list(
        history_view.history_lines("long0001", whole, None, False)
    )
