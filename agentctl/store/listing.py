"""A session's history listing kept as one value.

`history` is read before every resume (the damage check), by `rollback`, `verify` and
`agentctl history`. From rows it costs a Python object per column per checkpoint: fetching the
seven columns alone is three times the cost of listing the ids. Checkpoints are never changed
and only ever appended, so a listing of checkpoints 1..N, once read, stays true for as long as
the session exists: when a run stops, the runner keeps the listing so far as one JSON text,
and `history` reads that text plus the rows after N (a bounded tail: the listing is renewed
once KEEP_EVERY checkpoints are not in it).

It is a cache, like the conversation kept ready (store/ready.py): a listing that is damaged,
another session's, past the session's head or of another layout is ignored, and none is no
error. `verify` reads the rows and reports a listing that disagrees with them (only an edit that
recomputed the CRC makes one); the listing is rebuilt from the rows each time it is renewed.

Layout 2 opens with a header: how far its checkpoints were found sound when it was kept (their
numbering and links, store/soundness.sound_prefix) and a copy of its last row. A resume's damage
check reads the header alone, compares that last row with the row in the table, and walks only
the path above the sound part (`head_path_problems`): at 100,000 checkpoints it
reads a few hundred rows instead of the whole history. Layouts only go forward: a listing of an
older layout is rebuilt when the next run stops, one of a newer layout (a newer agentctl's) is
neither read nor replaced.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple, overload

from agentctl.store.base import CheckpointSummary, gc_paused

if TYPE_CHECKING:
    from agentctl.store.base import Store

# A listing is kept (or renewed) once this many checkpoints are not in it: shorter histories
# read in well under a millisecond from rows, and the tail read after a listing stays as short.
KEEP_EVERY = 200
LISTING_VERSION = 2  # of the layout below; a listing of another version is not read


class KeptListing(NamedTuple):  # not a dataclass: this module is imported on `history`'s path
    owner: str  # "ID CREATED_AT" (ready.owner_of): not a later session of the same id
    upto: int  # the id of its last checkpoint
    # JSON array: the header {"version", "sound", "last"}, then one row per checkpoint,
    # [id, parent, kind, from_state, to_state, created_at, detail] ("last" is the last row)
    body: str
    check: int  # CRC-32 of the above and LISTING_VERSION

    @classmethod
    def of(cls, owner: str, history: Sequence[CheckpointSummary]) -> KeptListing:
        """The listing of `history` (not empty), read from the rows (never from a listing)."""
        listing = _Builder()
        listing.add(history)
        made = listing.made(owner)
        if made is None:
            raise IndexError("a listing of no checkpoints")
        return made


# As json.dumps(..., ensure_ascii=False, separators=(",", ":")): a row (a tuple) is an array.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class _Builder:
    """A listing's text made a page of rows at a time, oldest first: each page encoded as it
    is read, its states' pairs and soundness taken, and the page let go. The text is the one
    encoding the whole history at once gives (what `summaries` parses); holding every row of
    100,000 checkpoints at once (700,000 objects) made the end of a run grow faster than the
    session (13.7x the time for 10x the checkpoints; 10x a page at a time)."""

    def __init__(self) -> None:
        from agentctl.store.soundness import SoundPrefix

        self._texts: list[str] = []
        self._pairs: set[tuple[str, str]] = set()
        self._sound = SoundPrefix()
        self._last: CheckpointSummary | None = None

    def add(self, page: Sequence[CheckpointSummary]) -> None:
        if not page:
            return
        self._texts.append(_encode(page)[1:-1])  # its rows without the array's brackets
        self._pairs.update(zip(map(_FROM, page), map(_TO, page), strict=True))
        self._sound.feed(page)
        self._last = page[-1]

    def made(self, owner: str) -> KeptListing | None:
        last = self._last
        if last is None:
            return None
        pairs = sorted(self._pairs, key=repr)[:MAX_PAIRS]
        header = {
            "version": LISTING_VERSION,
            "sound": self._sound.value,
            "last": list(last),
            "transitions": [list(pair) for pair in pairs],
        }
        body = "[" + _encode(header) + "," + ",".join(self._texts) + "]"
        return KeptListing(owner, last.id, body, _check(owner, last.id, body))


_FROM, _TO = itemgetter(3), itemgetter(4)  # a row's from_state, to_state
# Rows read at a time when a listing is kept: its cost per row is flat from 500 to 4,000.
KEEP_PAGE = 2000


class Header(NamedTuple):
    version: int
    sound: int  # checkpoints 1..sound were found sound when the listing was kept
    last: CheckpointSummary  # its last row, as it was then
    # The distinct (from_state, to_state) pairs of its rows (what `history` sizes its
    # transition column by), or None: not recorded (an earlier listing of this layout), or
    # more than MAX_PAIRS of them (only a damaged store has so many).
    transitions: frozenset[tuple[str, str]] | None = None


MAX_PAIRS = 256


def header(listing: KeptListing) -> Header | None:
    """The listing's header, read without parsing its rows; None when it has none that reads
    (an older layout's listing, or a damaged one). Whether the listing is sound and this
    session's is `covered`'s to say."""
    if not listing.body.startswith("[{"):
        return None
    try:
        value, _end = json.JSONDecoder().raw_decode(listing.body, 1)
    except (ValueError, RecursionError):
        return None
    if type(value) is not dict:
        return None
    version, sound, last = value.get("version"), value.get("sound"), value.get("last")
    if (
        type(version) is not int
        or type(sound) is not int
        or type(last) is not list
        or len(last) != 7
        or type(last[0]) is not int
        or type(last[6]) is not dict
    ):
        return None
    pairs = value.get("transitions")
    transitions = None
    if (
        type(pairs) is list
        and len(pairs) < MAX_PAIRS
        and all(
            type(p) is list and len(p) == 2 and type(p[0]) is str and type(p[1]) is str
            for p in pairs
        )
    ):
        transitions = frozenset((p[0], p[1]) for p in pairs)
    return Header(version, sound, CheckpointSummary._make(last), transitions)


def agrees(listing: KeptListing, rows: Sequence[CheckpointSummary]) -> bool:
    """The kept listing's rows are the first of `rows` (read from the table), byte for byte
    as a listing of them is written: what `verify` need not parse the listing to know (at
    100,000 checkpoints its rows parsed are 35 MB on top of the table's). False says nothing:
    the listing is then parsed and compared row by row."""
    body, upto = listing.body, listing.upto
    if not body.startswith("[{") or not 0 < upto <= len(rows) or rows[upto - 1].id != upto:
        return False
    try:
        _value, end = json.JSONDecoder().raw_decode(body, 1)  # past the header
    except (ValueError, RecursionError):
        return False
    written = _encode(rows[:upto])  # "[row,row...]": in the listing, after "[header,"
    return len(body) == end + len(written) and body[end] == "," and body.endswith(written[1:])


def from_row(row: Sequence[object]) -> KeptListing | None:
    """A stored listing, or None when its fields are not of their types (it is then not used)."""
    kinds = (str, int, str, int)
    if len(row) != len(kinds) or not all(
        type(value) is kind for value, kind in zip(row, kinds, strict=True)
    ):
        return None
    return KeptListing._make(row)


def covered(listing: KeptListing | None, owner: str, head: int) -> int:
    """The id of the last checkpoint in the kept listing when it is sound, this session's and
    not past its `head` (the session's newest checkpoint id); else 0. Its text is not parsed."""
    if (
        listing is None
        or listing.owner != owner
        or not 0 < listing.upto <= head
        or listing.check != _check(listing.owner, listing.upto, listing.body)
    ):
        return 0
    return listing.upto


def summaries(listing: KeptListing | None, owner: str, head: int) -> list[CheckpointSummary]:
    """The kept listing's checkpoints when it is usable (`covered`) and its text is a listing;
    else none: the caller then reads every row."""
    if listing is None or not covered(listing, owner, head):
        return []
    try:
        rows: Any = json.loads(listing.body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
        return []
    new = tuple.__new__  # each row as it was written: one C call, not seven arguments
    if (
        type(rows) is not list
        or len(rows) < 2
        or type(rows[0]) is not dict
        or rows[0].get("version") != LISTING_VERSION
    ):
        return []
    del rows[0]  # the header: `header` reads it
    if (
        not all(type(r) is list and len(r) == 7 and type(r[6]) is dict for r in rows)
        or rows[-1][0] != listing.upto
    ):
        return []
    # In place, equal events and states shared, and empty details: a history of 100,000
    # checkpoints holds a handful of distinct ones, and a copy of each per row was a fifth of
    # its memory (`history` of 100,000 checkpoints peaked at 105 MB). The parsed lists are
    # not kept beside the summaries either. Summaries are read, never changed.
    shared: dict[object, Any] = {}
    share, empty = shared.setdefault, dict[str, Any]()
    for index, r in enumerate(rows):
        r[2], r[3], r[4] = share(r[2], r[2]), share(r[3], r[3]), share(r[4], r[4])
        if not r[6]:
            r[6] = empty
        rows[index] = new(CheckpointSummary, r)
    return rows


def keep_listing(store: Store, session_id: str, owner: str, head: int) -> None:
    """Keep the session's listing when KEEP_EVERY or more of its checkpoints are not in the
    one kept, or the one kept is not usable (the runner calls this when a run stops). Built
    from the rows, not from the listing it replaces, so an edit's error is not carried on; a
    failure to write it costs time, nothing else."""
    # A list per checkpoint while the session is alive: no collections (as ready.keep_ready).
    with gc_paused():
        from agentctl.errors import StoreError

        if not store.keeps_listings or head < KEEP_EVERY:  # nothing to gain: read nothing
            return
        with contextlib.suppress(StoreError):
            kept = store.kept_listing(session_id)
            if head - covered(kept, owner, head) < KEEP_EVERY:
                return
            top = header(kept) if kept is not None else None
            if top is not None and top.version > LISTING_VERSION:
                return  # a newer agentctl's layout: it is not ours to replace
            listing, after = _Builder(), 0
            while True:  # the rows a page at a time, never all of them at once
                page = store.history_page(session_id, after, KEEP_PAGE)
                listing.add(page)
                if len(page) < KEEP_PAGE:
                    break
                last = page[-1].id
                if type(last) is not int or last <= after:
                    return  # numbered by something that is not an order: no listing
                after = last
            made = listing.made(owner)
            if made is not None:
                store.keep_listing(session_id, made)


def _check(owner: str, upto: int, body: str) -> int:
    head = f"{LISTING_VERSION}:{owner}:{upto}:"
    return zlib.crc32(body.encode("utf-8", "surrogatepass"), zlib.crc32(head.encode()))


# -- the path a session's head stands on, read in part -----------------------------------------

PAGE = 1000  # rows a walk below the sound part reads at a time


def head_path_problems(store: Store, session_id: str) -> list[str]:
    """What is wrong on the path from the session's newest checkpoint back to its first: what a
    write refuses to extend. With a kept listing of this session (store/listing.py) whose last
    row is still the row in the table, only the rows after it are read, and the walk stops
    where it enters the part the listing found sound when it was kept; else (no listing, one
    that is not sound, not this session's, of another layout, or one the rows no longer
    agree with) the whole history is read, as `path_problems` always did. Raises
    UnknownSessionError; StoreError for rows that do not read."""
    from agentctl.store.soundness import path_problems

    found = _trusted(store, session_id)
    if found is None:
        history = store.history(session_id)
        return path_problems(history, history[-1].id if history else 0)
    listing, top, tail = found
    if not tail:  # its last row no longer matches the table: the listing is not trusted
        history = store.history(session_id, kept=False)
        return path_problems(history, history[-1].id if history else 0)
    head = tail[-1].id
    if [c.id for c in tail] != list(range(listing.upto, head + 1)):  # as path_problems says
        return [f"checkpoints are not numbered 1..{listing.upto + len(tail) - 1} without gaps"]
    trusted = min(top.sound, listing.upto)
    rows = _Rows(store, session_id, tail, head, trusted)
    try:
        return path_problems(rows, head, trusted=trusted)
    except _Missing as missing:
        return [f"checkpoints are not numbered 1..{head} without gaps (no {missing.args[0]})"]


def _trusted(
    store: Store, session_id: str
) -> tuple[KeptListing, Header, list[CheckpointSummary]] | None:
    """The session's kept listing, its header, and the rows from its last one on (that row
    first), when the listing is sound, this session's and of this layout; the rows are none
    when the listing's last row is no longer the table's, or past the head (stale). None: no
    usable listing."""
    listing = store.kept_listing(session_id) if store.keeps_listings else None
    top = header(listing) if listing is not None else None
    if listing is None or top is None or top.version != LISTING_VERSION:
        return None
    tail = store.history_page(session_id, after=listing.upto - 1)
    head = tail[-1].id if tail else 0
    if not covered(listing, _owner(store, session_id) if tail else "", head) or (
        tail[0] != top.last
    ):
        return listing, top, []
    return listing, top, tail


def _owner(store: Store, session_id: str) -> str:
    """Whose a cache beside the session must be (ready.owner_of): from the session's `list`
    row where the store reads one row from an index (pydantic's import, which the session's
    facts need, is a tenth of a second of `history`'s start), else from its facts (the
    default `session_summary` lists every session)."""
    from agentctl.store.base import cache_owner
    from agentctl.store.overview import OverviewDefaults

    if type(store).session_summary is not OverviewDefaults.session_summary:
        listed = store.session_summary(session_id)
        return cache_owner(session_id, listed.created_at) if listed is not None else ""
    return cache_owner(session_id, store.info(session_id).created_at)


class Outline(NamedTuple):
    """What `history` needs before its first row: the newest checkpoint's id and every
    distinct (from_state, to_state) pair of the history (its transition column's width)."""

    head: int
    transitions: frozenset[tuple[str, str]]


def outline(store: Store, session_id: str) -> Outline | None:
    """The history's outline from the kept listing's header and the rows after it, without
    reading the rest; None when no sound listing of this session records it (the caller reads
    the history whole)."""
    found = _trusted(store, session_id)
    if found is None:
        return None
    _listing, top, tail = found
    if top.transitions is None or not tail:
        return None
    if [c.id for c in tail] != list(range(tail[0].id, tail[-1].id + 1)):
        return None  # a gap: read it whole, as it is
    pairs = top.transitions | {(c.from_state, c.to_state) for c in tail}
    return Outline(tail[-1].id, pairs)


class _Missing(LookupError):
    pass


class _Rows(Sequence[CheckpointSummary]):
    """A history of `count` checkpoints as path_problems indexes it (row N at N - 1), holding
    the rows after the kept listing and reading older ones as the walk reaches them: one row
    in the `trusted` part (a rollback's target, where the walk ends), a page at a time below
    the listing's sound part (the walk goes on down from there)."""

    def __init__(
        self,
        store: Store,
        session_id: str,
        tail: list[CheckpointSummary],
        count: int,
        trusted: int,
    ) -> None:
        self._store, self._session_id, self._count = store, session_id, count
        self._by_id = {c.id: c for c in tail}
        self._trusted = trusted

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> CheckpointSummary: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[CheckpointSummary]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice) or not 0 <= index < self._count:
            raise IndexError(index)
        number = index + 1
        found = self._by_id.get(number)
        if found is None:
            start = number if number <= self._trusted else max(1, number - PAGE + 1)
            for c in self._store.history_page(self._session_id, start - 1, number - start + 1):
                self._by_id.setdefault(c.id, c)
            found = self._by_id.get(number)
            if found is None or found.id != number:
                raise _Missing(f"checkpoint {number}")
        return found
