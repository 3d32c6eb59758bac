"""A history's shape checked, pure: numbering, parents and lifecycle transitions, over the
checkpoint summaries a store lists. `verify` checks the whole tree; a write checks the path its
head stands on (`path_problems`), and a kept listing (store/listing.py) records how far its
checkpoints were found sound when it was kept (`sound_prefix`), so a resume walks only the
path above that (store/listing.head_path_problems) and reads no more of the history than that.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, overload

from agentctl.domain.lifecycle import CheckpointKind, Event, State, transition
from agentctl.errors import InvalidTransition
from agentctl.store.base import CheckpointSummary

LIFECYCLE_EVENTS = {e.value for e in Event}


def tree_problems(history: Sequence[CheckpointSummary]) -> list[str]:
    """Everything wrong with a history's shape, pure: numbering, parents, lifecycle
    transitions, time order."""
    if [c.id for c in history] != list(range(1, len(history) + 1)):
        return [f"checkpoints are not numbered 1..{len(history)} without gaps"]
    problems = []
    for checkpoint in history:
        if not _plainly_sound(history, checkpoint):  # the common step passes without a word
            problems.extend(_check_links(history, checkpoint))
    undated = [c.id for c in history if not isinstance(c.created_at, str)]
    if undated:  # a hand edit's number or bytes: no order to compare
        return [*problems, f"checkpoint {undated[0]} is dated by something that is not a time"]
    for before, after in itertools.pairwise(history):
        if after.created_at < before.created_at:
            problems.append(
                f"checkpoint {after.id} is dated {after.created_at}, before checkpoint "
                f"{before.id} ({before.created_at})"
            )
    return problems


def path_problems(
    history: Sequence[CheckpointSummary], checkpoint_id: int, *, trusted: int = 0
) -> list[str]:
    """What is wrong on the path from `checkpoint_id` back to the first checkpoint: the part
    of a history a session stands on. Damage on an abandoned branch is not on it, so a
    rollback past damage makes a session writable again. The walk stops at a checkpoint
    numbered `trusted` or lower: the caller knows every checkpoint up to there is sound (a
    kept listing's `sound_prefix`), and `history` then need only hold what the walk reads (a
    sequence that reads rows as it is indexed: store/listing.head_path_problems)."""
    if not trusted and (not history or [c.id for c in history] != list(range(1, len(history) + 1))):
        return [f"checkpoints are not numbered 1..{len(history)} without gaps"]
    problems: list[str] = []
    current: int | None = checkpoint_id
    for _ in range(len(history)):  # bounded: a damaged parent chain cannot loop
        if current is None or current <= trusted:
            return problems
        if not 1 <= current <= len(history):
            return [*problems, f"a parent points to checkpoint {current}, which is not there"]
        c = history[current - 1]
        if not _plainly_sound(history, c):
            problems.extend(_check_links(history, c))
        if c.parent is not None and c.parent >= c.id:
            return [*problems, f"checkpoint {c.id} has parent {c.parent}, not an earlier one"]
        current = c.parent
    return problems


def sound_prefix(history: Sequence[CheckpointSummary]) -> int:
    """The highest K such that checkpoints 1..K are numbered without gaps and each is linked
    soundly to its parent (what path_problems checks of each checkpoint on a path): every
    path that enters them at K or below is sound. A history with no damage gives its length."""
    prefix = SoundPrefix()
    prefix.feed(history)
    return prefix.value


class SoundPrefix:
    """`sound_prefix` of a history read a page at a time (a listing kept at the end of a run,
    store/listing.py): each page fed in order, oldest first. What the links check reads of
    an earlier checkpoint is its to_state (the one before, a rollback's target), so that is
    all that is held of it, one shared object per distinct state, not the rows."""

    def __init__(self) -> None:
        self._ends = _Ends()
        self._found: int | None = None  # the first checkpoint found not sound, at its index

    @property
    def value(self) -> int:
        return len(self._ends.states) if self._found is None else self._found

    def feed(self, page: Sequence[CheckpointSummary]) -> None:
        if self._found is not None:
            return
        ends = self._ends
        states, share, legal = ends.states, ends.shared.setdefault, _LEGAL
        for c in page:
            index = len(states)
            number, parent, kind, from_state, to_state, _at, _detail = c
            try:  # _plainly_sound, inline: the common step
                plain = (
                    parent == index
                    and index > 0
                    and (kind, from_state, to_state) in legal
                    and from_state == states[-1]
                )
            except TypeError:  # a damaged JSON-lines store's value that cannot be hashed
                plain = False
            if number != index + 1 or (
                not plain and (_check_links(ends, c) or (parent is not None and parent >= number))
            ):
                self._found = index
                return
            # Shared when text (a damaged store's may not even hash).
            states.append(share(to_state, to_state) if type(to_state) is str else to_state)


class _Ended(Protocol):
    """What the links check reads of an earlier checkpoint."""

    @property
    def to_state(self) -> str: ...


class _End(NamedTuple):
    to_state: str


class _Ends(Sequence[_End]):
    """A history as the links check indexes it (checkpoint N at N - 1), each checkpoint only
    its to_state."""

    def __init__(self) -> None:
        self.states: list[str] = []
        self.shared: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.states)

    @overload
    def __getitem__(self, index: int) -> _End: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[_End]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [_End(s) for s in self.states[index]]
        return _End(self.states[index])


def _plainly_sound(history: Sequence[_Ended], c: CheckpointSummary) -> bool:
    """The common step, passed without building a message: not the first checkpoint nor a
    rollback, its parent the one before it, starting from the state that one left, by a
    transition already judged legal. A resume walks 10,000 of these first (10.5 ms → 4)."""
    try:
        return (
            c.parent == c.id - 1
            and c.id > 1
            and (c.kind, c.from_state, c.to_state) in _LEGAL
            and c.from_state == history[c.id - 2].to_state
        )
    except TypeError:  # a damaged JSON-lines store's value that cannot be hashed: the long way
        return False


def _check_links(history: Sequence[_Ended], c: CheckpointSummary) -> list[str]:
    where = f"checkpoint {c.id} ({c.kind})"
    if c.id == 1:
        if c.parent is not None or c.from_state != State.IDLE.value:
            return [f"{where}: the first checkpoint must start from idle with no parent"]
        return _check_transition(where, c)
    problems = []
    previous = history[c.id - 2]  # the head when this checkpoint was written
    if c.from_state != previous.to_state:
        problems.append(
            f"{where}: starts from {c.from_state} but the head before it was {previous.to_state}"
        )
    if c.kind == CheckpointKind.ROLLBACK:
        if c.parent is None or not 1 <= c.parent < c.id:
            return [*problems, f"{where}: rolls back to {c.parent}, not an earlier checkpoint"]
        target = history[c.parent - 1]
        if c.to_state != target.to_state:
            problems.append(f"{where}: lands in {c.to_state}, its target was in {target.to_state}")
        return problems
    if c.parent != c.id - 1:
        problems.append(f"{where}: parent {c.parent}, expected {c.id - 1}")
    return problems + _check_transition(where, c)


def _check_transition(where: str, c: CheckpointSummary) -> list[str]:
    triple = (c.kind, c.from_state, c.to_state)
    # Only names that are text of a sane length are remembered: a damaged store's could be
    # megabytes, or not text at all.
    sane = all(isinstance(x, str) and len(x) <= 64 for x in triple)
    judge = _judged if sane else _transition_problem
    problem = judge(*triple)
    if problem:
        return [f"{where}: {problem}"]
    if sane and c.kind != CheckpointKind.ROLLBACK and len(_LEGAL) < 1024:
        _LEGAL.add(triple)
    return []


def _transition_problem(kind: str, from_state: str, to_state: str) -> str | None:
    """What is wrong with a checkpoint of `kind` from `from_state` to `to_state`, if anything.
    A session has a few dozen such triples however long it is: each is judged once (a resume
    checks its whole path first, 10,000 checkpoints at a time)."""
    try:
        before = State(from_state)
        after = State(to_state)
    except ValueError:
        return f"unknown state {from_state!r} or {to_state!r}"
    if kind in LIFECYCLE_EVENTS:
        try:
            expected = transition(before, Event(kind))
        except InvalidTransition as exc:
            return str(exc)
        if expected is not after:
            return f"{kind} from {before.value} leads to {expected.value}, not {after.value}"
    elif before is not after:
        return f"a {kind} event must not change the state ({before.value} → {after.value})"
    return None


_judged = functools.lru_cache(maxsize=1024)(_transition_problem)
# (kind, from, to) triples of text found legal for a checkpoint that is not a rollback (whose
# landing state is checked against its target instead): the fast path of _plainly_sound.
_LEGAL: set[tuple[str, str, str]] = set()
