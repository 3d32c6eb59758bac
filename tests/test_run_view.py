"""The run view (issue 25 part 1): every tool call named by its subject, a command's output
previewed, every write's diff however approved, what reads read, tokens and time per turn, a
header naming model and server (never the key), and a summary at the end."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import SAMPLES, run
from tests.test_terminal import run_in_terminal

FIX = str(SAMPLES / "fix_failing_test.toml")


def workspace(tmp_path: Path) -> str:
    root = tmp_path / "invoice"
    shutil.copytree(SAMPLES / "invoice", root)
    return str(root)


def only_session() -> str:
    [session] = run("list", "--json").json()
    return str(session["id"])


def test_the_run_view_names_each_call_and_shows_output_diffs_reads_turns_and_a_summary(
    tmp_path: Path,
) -> None:
    result = run("run", FIX, "--workspace", workspace(tmp_path), "--yes")
    assert result.code == 0, result.stderr
    sid = only_session()
    err = result.stderr
    # The header first, before the first checkpoint's line; model and server named.
    assert err.index(f"session {sid} started · model scripted · server") < err.index("#1 planning")
    # A command: named, its exit code, the first and last lines of its output.
    assert "● run_shell $ python3 -m unittest\n  ✗ exit 1" in err
    assert "│ FAILED (failures=2)" in err
    assert "more lines …" in err  # the middle of a long output is counted, not shown
    assert "✓ exit 0" in err
    # A read says what it read.
    assert "● read_file invoice.py\n  read 16 lines (577 B)" in err
    # An edit approved by --yes shows its diff.
    assert "● edit_file invoice.py\n  --- a/invoice.py\n  +++ b/invoice.py" in err
    assert "  -    return total_cents - total_cents * percent // 10\n" in err
    assert "  +    return total_cents - total_cents * percent // 100\n" in err
    assert "edited invoice.py · 1 file changed" in err
    # Each model turn: tokens in and out, and its time.
    assert "turn 1: " in err
    assert " in / " in err
    assert " out tokens · " in err
    # The summary: turns, tokens, cost (the scripted model is priced at 0), files with +/-,
    # and the commands to look at or undo the run.
    assert "─ 6 turns · " in err
    assert "· $0.0000 · " in err
    assert "files: invoice.py +1 -1" in err
    assert f"diff: agentctl diff {sid} · roll back: agentctl rollback {sid} --to 1" in err
    assert result.stdout.startswith("Fixed apply_discount")  # stdout: the result only


def test_preview_lines_is_a_setting(tmp_path: Path) -> None:
    one = run(
        "run", FIX, "--workspace", workspace(tmp_path), "--yes", env={"AGENTCTL_PREVIEW_LINES": "1"}
    )
    assert one.code == 0, one.stderr
    ran = one.stderr.split("● run_shell", 2)[1]
    assert [line for line in ran.splitlines() if "│" in line] == [
        "  │ [stderr]",
        "  │ … 20 more lines …",
        "  │ FAILED (failures=2)",
    ]
    none = run(
        "run",
        FIX,
        "--workspace",
        workspace(tmp_path / "b"),
        "--yes",
        env={"AGENTCTL_PREVIEW_LINES": "0"},
    )
    assert none.code == 0
    assert "│" not in none.stderr


def test_output_and_names_are_data_never_markup_or_control(tmp_path: Path) -> None:
    task = tmp_path / "odd.toml"
    task.write_text(
        """goal = "print odd things"
[[script]]
[[script.tool_calls]]
name = "submit_plan"
arguments = { steps = ["print"] }
[[script]]
[[script.tool_calls]]
name = "run_shell"
arguments = { command = "printf '\\\\033[31mred [bold]x[/bold]\\\\n'" }
[[script]]
[[script.tool_calls]]
name = "finish"
arguments = { result = "ok" }
"""
    )
    work = tmp_path / "w"
    work.mkdir()
    result = run("run", str(task), "--workspace", str(work), "--yes")
    assert result.code == 0, result.stderr
    assert "\x1b" not in result.stderr
    assert "│ \\x1b[31mred [bold]x[/bold]" in result.stderr


def test_the_header_never_shows_the_key_or_a_password(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    env = {
        "OPENAI_API_KEY": "sk-header-test-SECRET-1234",
        "OPENAI_BASE_URL": "http://user:hunter2@127.0.0.1:9/v1",
        "AGENTCTL_RETRIES": "0",
    }
    result = run("run", "say hi", "--model", "m", "--workspace", str(work), env=env)
    assert result.code == 5, result.stderr
    assert "server http://user:****@127.0.0.1:9/v1" in result.stderr
    assert "SECRET" not in result.stderr
    assert "hunter2" not in result.stderr


SLOW = """
goal = "wait for a slow command"
[[script]]
delay = 0.5
[[script.tool_calls]]
name = "submit_plan"
arguments = { steps = ["wait"] }
[[script]]
[[script.tool_calls]]
name = "run_shell"
arguments = { command = "sleep 0.6; echo waited" }
[[script]]
[[script.tool_calls]]
name = "write_file"
arguments = { path = "done.txt", content = "waited\\n" }
[[script]]
[[script.tool_calls]]
name = "finish"
arguments = { result = "ok" }
"""


def test_on_a_terminal_a_spinner_counts_seconds_and_a_diff_is_coloured(tmp_path: Path) -> None:
    task = tmp_path / "slow.toml"
    task.write_text(SLOW)
    work = tmp_path / "w"
    work.mkdir()
    screen = run_in_terminal(["run", str(task), "--workspace", str(work), "--yes"])
    assert screen.code == 0, screen.text
    assert "thinking… 0." in screen.text  # while the model thinks, with the seconds
    assert "running… 0." in screen.text  # while the command runs
    assert "\x1b[32m+waited" in screen.text  # the write's diff, in green


def consoles() -> list[Any]:
    """A colour terminal, a terminal without colour, and a pipe: each a rich console on a
    string."""
    from rich.console import Console

    kinds = [{"force_terminal": True, "color_system": "truecolor"}, {"force_terminal": True}]
    kinds += [{"force_terminal": False}]
    return [
        Console(file=io.StringIO(), highlight=False, soft_wrap=True, emoji=False, width=20, **k)
        for k in kinds
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="[]\\/ab#@=:\x1b\u202e\n ", max_size=30), min_size=1, max_size=3))
def test_a_run_view_line_is_the_bytes_rich_prints(pieces: list[str]) -> None:
    # render.line writes through the console's buffer instead of `print`: the same bytes for our
    # markup around hostile text (escaped, wider than the console, a line break), on a colour
    # terminal, a plain one and a pipe, and inside a capture.
    from agentctl.terminal import render

    markup = "  ".join(f"[dim]#{n}[/] [bold]{render.escape(p)}[/] ok" for n, p in enumerate(pieces))
    assert_same_bytes(lambda c: c.print(markup), lambda c: render.line(markup, c))


def assert_same_bytes(want: Callable[[Any], None], got: Callable[[Any], None]) -> None:
    """`got` writes what `want` writes, on each kind of console and inside a capture."""
    for printed, written in zip(consoles(), consoles(), strict=True):
        want(printed)
        got(written)
        assert written.file.getvalue() == printed.file.getvalue()
        with printed.capture() as wanted, written.capture() as gotten:
            want(printed)
            got(written)
        assert gotten.get() == wanted.get()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet="[]\\/ab#@=:\x1b\u202e\n ●", max_size=20),
            st.sampled_from([None, "dim", "bold", "red", "green"]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_styled_pieces_are_the_bytes_rich_prints_for_them(
    pieces: list[tuple[str, str | None]],
) -> None:
    # render.styled skips the markup parse: the bytes rich prints for the same text and styles
    # (a Text of the pieces), hostile text included, on every kind of console and in a
    # capture. Markup is not the reference: rich's escape leaves a backslash before `[` as it
    # is, which the markup then reads as an escape (`\\[` shows `[`).
    from rich.text import Text

    from agentctl.terminal import render

    shown = Text.assemble(*((render.visible(t), s or "") for t, s in pieces))
    assert_same_bytes(lambda c: c.print(shown), lambda c: render.styled(pieces, c))
