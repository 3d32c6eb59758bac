"""The store-wide reads (base.Overview) as an executable spec, mixed into every backend's
conformance class beside StoreSpec: each backend's answer is checked against what the rule
says and against the defaults of store/overview.py, built on the session tree alone (an
override that answers from an index must answer the same)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar

import pytest

from agentctl.domain.lifecycle import State
from agentctl.domain.session import Usage
from agentctl.store import Store
from agentctl.store.base import SessionSummary
from agentctl.store.core import capabilities
from agentctl.store.overview import OverviewDefaults
from agentctl.testing.store_spec import draft, info

DEFAULTS = OverviewDefaults


def pile(store: Store) -> None:
    """Five sessions, updated in the order e, a, c, b, d (d newest); two forks of `aa` (one
    under an id that `aa` is a prefix of, and one of `aab`, which must not count as `aa`'s);
    a done one; labels on one (where the backend keeps labels)."""
    order = {"aa": 3, "aab": 5, "ab-1": 2, "ab-2": 7, "e0": 1}
    for sid, minute in order.items():
        forked_from = {"aab": "aa:2", "ab-2": "aab:1", "ab-1": "aa:1"}.get(sid)
        made = info(sid, f"goal of {sid}").model_copy(
            update={"forked_from": forked_from, "model": "m-big" if minute > 4 else "m-small"}
        )
        store.create_session(made, draft(None, 1, f"{sid} starts with a message"))
        store.append(sid, 1, draft(1, 2, "a second message " * minute))
        usage = Usage(calls=minute, prompt_tokens=minute)
        last = replace(draft(2, 30 + minute, "and a third"), usage=usage)
        if sid == "aa":
            last = draft(2, 30 + minute, "done", state=State.DONE)
        store.append(sid, 2, last)
    if capabilities(store)["labels"]:
        store.set_labels("ab-1", "named", ("red",))


class OverviewSpec:
    def test_select_sessions_is_newest_first_and_stops_at_the_limit(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("agentctl.store.sqlite_overview.PAGE", 2)  # pages on SQLite
        pile(store)
        every = store.list_sessions()
        assert [s.id for s in every] == ["ab-2", "aab", "aa", "ab-1", "e0"]
        for limit in (None, 1, 2, 3, 5, 9):
            assert store.select_sessions(None, limit) == every[:limit]
            assert store.select_sessions(None, limit) == DEFAULTS.select_sessions(
                store, None, limit
            )
        not_done = [s for s in every if s.state != "done"]

        def keep(summary: SessionSummary) -> bool:
            return summary.state != "done"

        assert store.select_sessions(keep, 3) == not_done[:3]
        assert store.select_sessions(keep, None) == not_done
        if capabilities(store)["labels"]:
            assert store.select_sessions(lambda s: "red" in s.tags, 5)[0].name == "named"
        assert store.select_sessions(lambda s: False, 5) == []

    def test_session_summary_is_the_listed_row(self, store: Store) -> None:
        pile(store)
        for listed in store.list_sessions():
            assert store.session_summary(listed.id) == listed
        assert store.session_summary("aa0") is None  # not a prefix match
        assert store.session_summary("zz") is None

    def test_session_sizes_count_what_a_session_holds(self, store: Store) -> None:
        pile(store)
        sizes = store.session_sizes(["e0", "ab-2", "nope", "aa"])
        assert set(sizes) == {"e0", "ab-2", "aa"}
        assert all(n > 100 for n in sizes.values())
        assert sizes["ab-2"] > sizes["e0"]  # its second message is 7 times as long
        assert store.session_sizes([]) == {}

    def test_usage_facts_are_every_session_and_its_head_usage(self, store: Store) -> None:
        pile(store)
        facts = store.usage_facts()
        assert facts == DEFAULTS.usage_facts(store)
        by_id = {f.session_id: f for f in facts}
        assert sorted(by_id) == store.match_sessions("")
        assert by_id["ab-2"][1:] == ("m-big", info().created_at, "aab:1", 7, 7, 0, 0, (1, 0, 0, 0))
        assert by_id["aab"].copied == (2, 0, 0, 0)  # usage of aab's own checkpoint 2
        assert by_id["e0"].copied is None
        assert by_id["aa"].forked_from is None
        assert by_id["aa"].calls == 33  # the done checkpoint's usage (draft: calls = n)

    def test_forks_of_come_from_the_origin_exactly(self, store: Store) -> None:
        pile(store)
        assert store.forks_of("aa") == [("aab", "2"), ("ab-1", "1")]
        assert store.forks_of("aab") == [("ab-2", "1")]
        assert store.forks_of("ab") == []
        assert store.forks_of("zz") == []
        for sid in store.match_sessions(""):
            assert store.forks_of(sid) == DEFAULTS.forks_of(store, sid)

    def test_forks_are_found_after_a_reopen(self, store: Store, tmp_path: Path) -> None:
        if not getattr(self, "persistent", True):
            pytest.skip("the backend keeps nothing across handles")
        pile(store)
        again = self.open(tmp_path)  # type: ignore[attr-defined]
        try:
            assert again.forks_of("aa") == [("aab", "2"), ("ab-1", "1")]
        finally:
            again.close()

    def test_a_fork_point_that_is_not_there_copies_nothing(self, store: Store) -> None:
        for sid, origin in (("x1", "aa:99"), ("x2", "aa"), ("x3", "aa:1x"), ("x4", "aa:2")):
            made = info(sid).model_copy(update={"forked_from": origin})
            store.create_session(made, draft(None, 1, "m"))
            store.append(sid, 1, draft(1, 2, "n"))
        facts = store.usage_facts()
        assert facts == DEFAULTS.usage_facts(store)
        assert [f.copied for f in facts] == [None, None, None, (2, 0, 0, 0)]
        assert store.forks_of("aa") == [("x1", "99"), ("x2", ""), ("x3", "1x"), ("x4", "2")]

    # Times as agentctl writes them (UTC, to the millisecond), and the other forms a store may
    # hold (another zone, no zone, a space, the basic form, a date that is no date, not a time).
    ODD_TIMES: ClassVar[dict[str, str]] = {
        "t-plain": "2023-11-21T20:53:19.000+00:00",
        "t-second": "2023-11-21T20:53:20+00:00",
        "t-half": "2023-11-21T20:53:20.500+00:00",
        "t-after": "2023-11-21T20:53:21.000+00:00",
        "t-zone": "2023-11-21T21:53:20.250+01:00",
        "t-zone-late": "2023-11-21T15:53:21-05:00",
        "t-naive": "2023-11-21T20:53:19",
        "t-space": "2023-11-21 20:53:20.100+00:00",
        "t-basic": "20231121T205310+00:00",
        "t-z": "2023-11-21T20:53:19Z",
        "t-feb30": "2023-02-30T00:00:00+00:00",
        "t-junk": "not a time",
        "t-early": "2020-01-01T00:00:00.000+00:00",
        "t-late": "2030-01-01T00:00:00.000+00:00",
    }
    CUTOFFS = (
        datetime(2023, 11, 21, 20, 53, 20, tzinfo=UTC),
        datetime(2023, 11, 21, 20, 53, 20, 400000, tzinfo=UTC),
        datetime(2023, 11, 22, 1, 53, 21, tzinfo=timezone(timedelta(hours=5))),
        datetime(2023, 11, 21, 20, 53, 19, 999999, tzinfo=UTC),
        datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),  # no UTC second
        datetime(2099, 1, 1, tzinfo=UTC),
    )

    def test_sessions_before_read_every_form_of_time_as_python_does(self, store: Store) -> None:
        for sid, when in self.ODD_TIMES.items():
            store.create_session(info(sid), replace(draft(None, 1, "m"), created_at=when))
        before = store.sessions_before(self.CUTOFFS[1])
        assert [s.id for s in before] == [  # in the order of their text, as listed
            "t-basic",  # 20:53:10
            "t-zone",  # 20:53:20.25 UTC
            "t-second",
            "t-z",
            "t-plain",
            "t-naive",
            "t-space",  # 20:53:20.1
            "t-early",
        ]
        for cutoff in self.CUTOFFS:
            assert store.sessions_before(cutoff) == DEFAULTS.sessions_before(store, cutoff)
            assert store.sessions_before(cutoff) == [
                s for s in store.list_sessions() if s in store.sessions_before(cutoff)
            ]  # newest first, as listed

    def test_usage_totals_sum_each_group_and_read_every_form_of_time(self, store: Store) -> None:
        for n, (sid, when) in enumerate(self.ODD_TIMES.items()):
            made = info(sid).model_copy(update={"created_at": when, "model": ("m-a", "m-b")[n % 2]})
            store.create_session(made, draft(None, 1, "m"))
            usage = Usage(calls=n, prompt_tokens=10 * n, completion_tokens=n)
            store.append(sid, 1, replace(draft(1, 2, "n"), usage=usage))
        fork = info("t-fork").model_copy(update={"forked_from": "t-late:1", "model": "m-a"})
        store.create_session(fork, replace(draft(None, 1, "m"), usage=Usage(calls=2)))
        store.append("t-fork", 1, replace(draft(1, 2, "n"), usage=Usage(calls=5)))
        every = store.usage_totals("model", None)
        assert [t.key for t in every] == ["m-a", "m-b"]
        assert sum(t.sessions for t in every) == len(self.ODD_TIMES) + 1
        assert sum(t.calls for t in every) == sum(range(len(self.ODD_TIMES))) + 3  # 5 - 2 own
        for by in ("model", "day", "session"):
            for since in (None, *self.CUTOFFS):
                assert store.usage_totals(by, since) == DEFAULTS.usage_totals(store, by, since)
        later = store.usage_totals("session", self.CUTOFFS[1])
        assert [t.key for t in later] == ["t-after", "t-fork", "t-half", "t-late", "t-zone-late"]
