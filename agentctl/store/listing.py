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
"""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from agentctl.store.base import CheckpointSummary, gc_paused

if TYPE_CHECKING:
    from agentctl.store.base import Store

# A listing is kept (or renewed) once this many checkpoints are not in it: shorter histories
# read in well under a millisecond from rows, and the tail read after a listing stays as short.
KEEP_EVERY = 200
LISTING_VERSION = 1  # of the layout below; a listing of another version is ignored


class KeptListing(NamedTuple):  # not a dataclass: this module is imported on `history`'s path
    owner: str  # "ID CREATED_AT" (ready.owner_of): not a later session of the same id
    upto: int  # the id of its last checkpoint
    body: str  # JSON array of [id, parent, kind, from_state, to_state, created_at, detail]
    check: int  # CRC-32 of the above and LISTING_VERSION

    @classmethod
    def of(cls, owner: str, history: Sequence[CheckpointSummary]) -> KeptListing:
        body = json.dumps([list(c) for c in history], ensure_ascii=False, separators=(",", ":"))
        upto = history[-1].id
        return cls(owner, upto, body, _check(owner, upto, body))


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
        or not rows
        or not all(type(r) is list and len(r) == 7 and type(r[6]) is dict for r in rows)
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
            if head - covered(store.kept_listing(session_id), owner, head) < KEEP_EVERY:
                return
            history = store.history(session_id, kept=False)
            store.keep_listing(session_id, KeptListing.of(owner, history))


def _check(owner: str, upto: int, body: str) -> int:
    head = f"{LISTING_VERSION}:{owner}:{upto}:"
    return zlib.crc32(body.encode("utf-8", "surrogatepass"), zlib.crc32(head.encode()))
