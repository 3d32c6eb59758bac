"""Checkpoint details: one typed record per kind, stored as a plain JSON object."""

from __future__ import annotations

from agentctl.domain import checkpoints
from agentctl.domain.checkpoints import CompactionDetail, PlanDetail, RollbackDetail, ToolDetail
from agentctl.domain.lifecycle import CheckpointKind


def test_every_kind_a_store_holds_has_a_record() -> None:
    assert set(checkpoints.KINDS) == set(CheckpointKind)


def test_a_record_round_trips_through_its_stored_form() -> None:
    samples = [
        (CheckpointKind.PLAN_READY, PlanDetail(("a", "b"), tool="submit_plan")),
        (CheckpointKind.TOOL_RESULT, ToolDetail("run_shell", "c1", "external", "ls", True, "x")),
        (CheckpointKind.ROLLBACK, RollbackDetail(3, 9)),
        (CheckpointKind.CONTEXT_COMPACTED, CompactionDetail("summarize", 4, 2, 900, 300)),
    ]
    for kind, record in samples:
        assert checkpoints.parse(kind, checkpoints.payload(record)) == record


def test_the_stored_form_is_what_older_versions_wrote() -> None:
    assert checkpoints.payload(RollbackDetail(3, 9)) == {"to": 3, "from": 9}
    assert checkpoints.payload(ToolDetail("read_file", "c1", "read")) == {
        "tool": "read_file",
        "tool_call_id": "c1",
        "side_effect": "read",
    }


def test_values_of_the_wrong_type_read_as_absent() -> None:
    hostile = {"tool": 5, "tool_call_id": ["x"], "error": "yes", "command": None, "junk": 1}
    assert checkpoints.parse("tool_started", hostile) == ToolDetail()
    assert checkpoints.parse("context_compacted", {"kept": True}).kept == 0  # type: ignore[union-attr]
    assert checkpoints.parse("no_such_kind", {"a": 1}) == checkpoints.NoDetail()
