"""`history` and `history --graph`: one line per checkpoint, or the checkpoint tree like `git
log --graph`, streamed as they are made (a long session has 100,000 checkpoints). One view:
the table and the graph share the descriptions, the tagging and the streaming, and move as a
unit. Piped, lines are the plain text rich would show, made without rich."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from agentctl.store.base import HistoryTable
from agentctl.terminal.describe import describe_checkpoint
from agentctl.terminal.render import (
    escape,
    plain_text,
    plural,
    state_markup,
    stream_lines,
    visible,
)

if TYPE_CHECKING:
    from agentctl.store.base import CheckpointSummary


_FOLD_CONTEXT = 1  # rows kept on each side of a branch point, a branch's end or the head


_FOLD_MIN = 3  # a linear stretch this long or longer between them is folded into one line


# What a graph folds: the turns of the loop. Every other event (the plan, a step done, a
# question, a follow-up, an error, a rollback…) is a landmark and always drawn.
_ROUTINE = frozenset(("model_reply", "tool_started", "tool_result", "nudge"))


class _Descriptions:
    """describe_checkpoint, as markup or as plain text, made once per distinct detail: a long
    session repeats a few hundred of them (`read_file ok`) across thousands of checkpoints."""

    def __init__(self, markup: bool) -> None:
        self.markup = markup
        self.made: dict[object, str] = {}

    def __call__(self, kind: str, detail: dict[str, Any]) -> str:
        try:
            key: object = (kind, *((k, _frozen(v)) for k, v in detail.items()))
            made = self.made.get(key)
        except TypeError:  # a value that is not hashable even frozen: made every time
            key, made = None, None
        if made is None:
            made = describe_checkpoint(kind, detail)
            if not self.markup:
                made = plain_text(made)
            if key is not None and len(self.made) < 10_000:
                self.made[key] = made
        return made


def _frozen(value: object) -> object:
    return tuple(value) if type(value) is list else value


def history_table(
    session_id: str, history: list[CheckpointSummary], limit: int | None = None
) -> None:
    """One line per checkpoint (the newest `limit` with --limit), streamed. Not a rich Table:
    measuring 1,000 rows of cells took 0.6 s, and a long history is exactly when a user wants
    it fast. Columns are padded by hand instead."""
    history_rows(session_id, HistoryTable.of(history, limit))


def history_rows(session_id: str, table: HistoryTable) -> None:
    """`history_table` of rows that may still be being read: the first screen is out before
    the rest of a long history is read."""
    stream_lines(lambda markup: table_lines(session_id, table, markup))


def history_lines(
    session_id: str,
    history: list[CheckpointSummary],
    limit: int | None = None,
    markup: bool = True,
) -> Iterator[str]:
    """The lines of `history_table`, as markup or as the plain text rich would show for it."""
    return table_lines(session_id, HistoryTable.of(history, limit), markup)


def table_lines(session_id: str, table: HistoryTable, markup: bool = True) -> Iterator[str]:
    """The lines of a history table (store/base.HistoryTable)."""
    tag = _Tagger(markup)
    shown_text, describe = tag.text, tag.describe
    head = table.head
    id_width = max(len("#"), len(str(head or 0)))
    t_width = max(
        [
            len("transition"),
            *(len(a) if a == b else len(a) + 3 + len(b) for a, b in table.transitions),
        ]
    )
    yield tag("bold", f"session {shown_text(session_id)}")
    yield tag(
        "bold",
        f"{'#':>{id_width}}  {'parent':>{id_width + 1}}  {'time':8}  "
        f"{'transition':{t_width}}  event",
    )
    if table.shown < table.total:
        earlier = plural(table.total - table.shown, "earlier checkpoint")
        yield tag("dim", f"… {earlier} (--limit)")
    cells: dict[tuple[str, str], str] = {}
    state = state_markup if markup else visible
    marker = " " + tag("bold", "← head")
    for c in table.rows:
        parent_cell = f"{'' if c.parent is None else c.parent:>{id_width + 1}}"
        if c.parent is not None and c.parent != c.id - 1:  # branches off an older checkpoint
            parent_cell = tag("magenta", parent_cell)
        pair = (c.from_state, c.to_state)
        styled = cells.get(pair)
        if styled is None:
            a, b = pair
            width = len(a) if a == b else len(a) + 3 + len(b)
            styled = (state(a) if a == b else f"{state(a)} → {state(b)}") + " " * (t_width - width)
            cells[pair] = styled
        yield (
            f"{c.id:>{id_width}}  {parent_cell}  {shown_text(c.created_at[11:19]):8}  "
            f"{styled}  {describe(c.kind, c.detail)}{marker if c.id == head else ''}"
        )


def graph_lanes(history: list[CheckpointSummary]) -> list[int]:
    """Each checkpoint's column in the tree (see _branches)."""
    return _branches(history)[0]


def _branches(history: list[CheckpointSummary]) -> tuple[list[int], list[tuple[int, int, int]]]:
    """Each checkpoint's column, and each abandoned branch as (column, index of its first
    checkpoint, index of its last). Column 0 is the path the head stands on; a branch takes
    the lowest column free where it begins (free again after its branch's last checkpoint),
    so the graph is as wide as the most branches alive at once, not as every branch ever
    made. Parents only point backwards (verify checks it), so one pass in id order finds
    every branch, and the walk from the head is bounded: damage cannot loop."""
    if not history:
        return [], []
    trunk, c = set(), history[-1]
    for _ in range(len(history)):
        trunk.add(c.id)
        if c.parent is None or not 1 <= c.parent < c.id or c.parent > len(history):
            break
        c = history[c.parent - 1]
    branch_of: list[int] = []  # per checkpoint: its branch (0: the trunk)
    spans: list[list[int]] = [[0, 0]]  # per branch: the index of its first and last
    tips: dict[int, int] = {}  # the newest checkpoint of each branch -> the branch
    for index, c in enumerate(history):
        if c.id in trunk:
            branch_of.append(0)
            continue
        branch = tips.pop(c.parent, None) if c.parent is not None else None
        if branch is None:  # a branch begins here
            branch = len(spans)
            spans.append([index, index])
        spans[branch][1] = index
        tips[c.id] = branch
        branch_of.append(branch)
    columns = [0] * len(spans)
    ends: list[int] = []  # per column but the trunk's: the last index its branch reaches
    for branch in range(1, len(spans)):
        first, last = spans[branch]
        column = next((n for n, end in enumerate(ends) if end < first), len(ends))
        if column == len(ends):
            ends.append(last)
        ends[column] = last
        columns[branch] = column + 1
    placed = [(columns[b], spans[b][0], spans[b][1]) for b in range(1, len(spans))]
    return [columns[b] for b in branch_of], placed


def _graph_rows(history: list[CheckpointSummary], lanes: list[int]) -> list[bool]:
    """Which rows the graph draws: every landmark event, a branch's first and last
    checkpoints, the checkpoints branches leave from, the first and the head, each with a row
    of context; the rest of a linear stretch of turns is one line saying how many it folds."""
    count = len(history)
    keep = [False] * count
    seen: set[int] = set()
    for index, (c, lane) in enumerate(zip(history, lanes, strict=True)):
        starts = c.parent is None or c.parent != c.id - 1 or lane != lanes[index - 1]
        ends = index + 1 < count and lanes[index + 1] != lane
        if starts or ends or index in (0, count - 1) or c.kind not in _ROUTINE:
            seen.add(index)
            if c.parent is not None and 1 <= c.parent <= count:
                seen.add(c.parent - 1)  # the checkpoint it leaves from
    for index in seen:
        for near in range(max(0, index - _FOLD_CONTEXT), min(count, index + _FOLD_CONTEXT + 1)):
            keep[near] = True
    return keep


def history_graph(
    session_id: str,
    history: list[CheckpointSummary],
    limit: int | None = None,
    fold: bool = True,
) -> None:
    """The checkpoint tree, like `git log --graph` (oldest first): the head's path on the
    left, each abandoned branch in a column beside it, where it left named. Bounded: a column
    is reused once its branch has ended, long linear stretches fold into one line (`fold`), and
    `limit` draws only the newest checkpoints."""
    stream_lines(lambda markup: graph_lines(session_id, history, limit, fold, markup))


def graph_lines(
    session_id: str,
    history: list[CheckpointSummary],
    limit: int | None = None,
    fold: bool = True,
    markup: bool = True,
) -> Iterator[str]:
    """The lines of `history_graph`, as markup or as the plain text rich would show for it."""
    tag = _Tagger(markup)
    lanes, branches = _branches(history)
    width = max(lanes, default=0) + 1
    alive: list[list[int]] = [[] for _ in range(width)]  # column -> its branches' first, last
    for lane, a, b in branches:
        alive[lane].extend((a, b))
    keep = _graph_rows(history, lanes) if fold else [True] * len(history)
    start = max(0, len(history) - limit) if limit else 0
    head = history[-1].id if history else None
    last_trunk = max((i for i, lane in enumerate(lanes) if lane == 0), default=-1)
    yield tag("bold", f"session {tag.text(session_id)}")
    if start:
        yield tag("dim", f"… {plural(start, 'earlier checkpoint')} (--limit)")
    cursor = [0] * width  # per column, the index into alive of the stretch at or after a row
    folded = 0

    def through(index: int) -> list[bool]:
        """Per column: does a branch pass this row (begun before it, not ended)?"""
        passing = []
        for n in range(width):
            pairs = alive[n]
            while cursor[n] < len(pairs) and pairs[cursor[n] + 1] < index:
                cursor[n] += 2
            k = cursor[n]
            passing.append(
                (n == 0 and index < last_trunk)
                or (k < len(pairs) and pairs[k] < index < pairs[k + 1])
            )
        return passing

    for index in range(start, len(history)):
        if not keep[index]:
            folded += 1
            continue
        if folded:
            if folded < _FOLD_MIN:  # too short to fold: a summary line would save nothing
                for back in range(index - folded, index):
                    yield _graph_row(history[back], lanes[back], through(back), tag, head)
            else:
                marks = through(index - 1)
                marks[lanes[index - 1]] = True
                cells = [tag(_COLOURS[n % 6], ":") if marks[n] else " " for n in range(width)]
                yield f"{' '.join(cells)}  " + tag("dim", f"… {plural(folded, 'checkpoint')}")
            folded = 0
        yield _graph_row(history[index], lanes[index], through(index), tag, head)


_COLOURS = ("green", "magenta", "cyan", "yellow", "blue", "red")  # of the graph's columns


class _Tagger:
    """Markup for a terminal, or the plain text it stands for (piped)."""

    def __init__(self, markup: bool) -> None:
        self.markup = markup
        self.text = escape if markup else visible  # outside text, made safe
        self.describe = _Descriptions(markup)

    def __call__(self, style: str, text: str) -> str:
        return f"[{style}]{text}[/]" if self.markup else text


def _graph_row(
    c: CheckpointSummary, lane: int, passing: list[bool], tag: _Tagger, head: int | None
) -> str:
    cells = []
    for n, through in enumerate(passing):
        if n == lane:
            cells.append(tag(_COLOURS[n % 6], "*"))
        elif through:
            cells.append(tag(_COLOURS[n % 6], "|"))
        else:
            cells.append(" ")
    where = ""
    if c.parent is not None and c.parent != c.id - 1:
        where = " " + tag("dim", f"(from #{c.parent})")
    marker = " " + tag("bold", "← head") if c.id == head else ""
    return f"{' '.join(cells)}  {c.id:>4}  {tag.describe(c.kind, c.detail)}{where}{marker}"
