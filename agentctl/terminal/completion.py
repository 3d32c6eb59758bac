"""Shell completion that never runs what it completes: every value is quoted for its shell.

A session's name is text from the store (another user's, or an import's), so `fix; touch PWNED`
must arrive on the command line as one argument. typer's own formats insert bash values raw and
hand zsh a string for `eval` whose escaping misses the backslash. Here each value is one word of
the shell's own syntax: plain when it is only letters, digits, `_`, `.` and `-`, else `$'…'` with
every other character as `\\xHH` (bash and zsh both read it; it holds no space, glob or quote for
the scripts' word splitting and `eval` to act on). fish inserts what it is given with its own
quoting, so its lines stay plain. A value with a control character is never offered (completion
lists are line-based, and it could not be typed anyway). Registered only when a shell asks for
completions, so start-up pays nothing.
"""

from __future__ import annotations

import re

from typer import _completion_classes as typer_completion

# The classes typer registers for bash and zsh; ours replace them (install()).
BashComplete = typer_completion.BashComplete
ZshComplete = typer_completion.ZshComplete

_PLAIN = re.compile(r"[A-Za-z0-9_.-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shell_word(value: str) -> str:
    """`value` as one word that bash and zsh read back exactly, and that contains no space,
    glob character or quote a script's word splitting, globbing or `eval` could act on."""
    if _PLAIN.fullmatch(value):
        return value
    escaped = "".join(
        ch if ch.isascii() and ch.isalnum() else "".join(f"\\x{b:02x}" for b in ch.encode())
        for ch in value
    )
    return f"$'{escaped}'"


def offered(value: str) -> bool:
    """Whether a value can be offered at all: no control characters, not empty."""
    return bool(value) and not _CONTROL.search(value)


class QuotingBashComplete(BashComplete):
    """bash puts COMPREPLY on the command line as it is: each value goes as a quoted word."""

    def complete(self) -> str:
        args, incomplete = self.get_completion_args()
        values = [str(i.value) for i in self.get_completions(args, incomplete)]
        return "\n".join(shell_word(v) for v in values if offered(v))


class QuotingZshComplete(ZshComplete):
    """zsh's script `eval`s this output: one `compadd` of quoted words (compadd quotes what it
    inserts), never a value inside a string for `eval` to parse."""

    def complete(self) -> str:
        args, incomplete = self.get_completion_args()
        values = [str(i.value) for i in self.get_completions(args, incomplete)]
        values = [v for v in values if offered(v)]
        if not values:
            return "_files"
        return "compadd -- " + " ".join(shell_word(v) for v in values)


def install() -> None:
    """Replace typer's bash and zsh completion formats by the quoting ones."""
    register = typer_completion.add_completion_class  # type: ignore[attr-defined]
    register(QuotingBashComplete, "bash")
    register(QuotingZshComplete, "zsh")
