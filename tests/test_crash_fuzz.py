"""Kill real processes at every fault point of every sample task on both backends, resume, and
check every invariant (see tests/fault/fuzz.py). The longer run: python -m tests.fault.fuzz."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fault.fuzz import SCENARIOS, Report, Scenario, fuzz_import, fuzz_move, fuzz_scenario

pytestmark = pytest.mark.process  # forks and kills real processes

TOTAL = Report()  # across the cases, for the count below; each case reports on its own


def sandbox_or_skip() -> None:
    """The shell scenario runs in bubblewrap: where it cannot run, a skip (a failure in CI)."""
    import os

    from agentctl.tools.sandbox import probe

    _, why = probe(os.environ)
    if why is not None:
        if os.environ.get("AGENTCTL_REQUIRE_SANDBOX") or os.environ.get("CI") == "true":
            pytest.fail(f"the sandbox is required here and cannot run: {why}")
        pytest.skip(f"no sandbox here: {why}")


@pytest.mark.parametrize("backend", ["sqlite", "json", "postgres"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_every_kill_point_resumes_to_the_clean_end(
    tmp_path: Path, backend: str, scenario: Scenario, request: pytest.FixtureRequest
) -> None:
    if scenario.sandboxed_shell:
        sandbox_or_skip()
    report = Report()
    database = None
    if backend == "postgres":
        database = request.getfixturevalue("postgres").database
    # To keep the default run short, SQLite takes the odd occurrences of each point and JSON
    # lines and PostgreSQL the even ones: together, every place twice over. python -m
    # tests.fault.fuzz does every place on both file stores, and kills the recoveries too.
    fuzz_scenario(
        tmp_path,
        backend,
        scenario,
        report,
        start=1 if backend == "sqlite" else 2,
        stride=2,
        database=database,
    )
    TOTAL.kill_points += report.kill_points
    TOTAL.scenarios += report.scenarios
    assert report.problems == []
    assert report.kill_points >= 8  # the scenario really was cut at many places


def test_at_least_a_hundred_kill_points_were_tried() -> None:
    # Runs after the parametrized cases above (file order); alone, it has nothing to count.
    if TOTAL.scenarios == 0:
        pytest.skip("run with the fuzz cases above")
    assert TOTAL.kill_points >= 100, TOTAL.kill_points


@pytest.mark.parametrize(
    ("source", "target"), [("sqlite", "json"), ("json", "postgres"), ("postgres", "sqlite")]
)
def test_a_move_killed_anywhere_runs_in_one_store_at_most_and_finishes_when_run_again(
    tmp_path: Path, source: str, target: str, request: pytest.FixtureRequest
) -> None:
    """Issue 29 item 18: a move killed mid-import left a copy that resumed like a normal
    session while the source resumed too (a payment ran twice), and the move could never
    complete."""
    database = None
    if "postgres" in (source, target):
        database = request.getfixturevalue("postgres").database
    report = Report()
    fuzz_move(tmp_path, source, target, report, database)
    assert report.problems == []
    assert report.kill_points >= 6


@pytest.mark.parametrize("backend", ["sqlite", "json", "postgres"])
def test_an_import_killed_anywhere_leaves_nothing_or_the_whole_session(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Issue 29 item 18: a failed import left its prefix behind, which verify called sound
    and resume took for a session."""
    database = request.getfixturevalue("postgres").database if backend == "postgres" else None
    report = Report()
    fuzz_import(tmp_path, backend, report, database)
    assert report.problems == []
    assert report.kill_points >= 3
