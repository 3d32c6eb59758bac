"""Approval: which tool calls may run without asking, how the question is put, how it is answered.

The one decision a reader must know: an approval covers exactly one call, once. The runner
records it on the task state keyed to the call's id (ids are unique within a session) and the
checkpoint that asked; it is consumed when the call starts, cleared by every new model reply and
never carried by a rollback (design.md §4). Allow-list rules approve only the command they name:
they match the parsed argument vector, and a command with shell control syntax is never
auto-approved, whatever the rule. A rule is about the workspace: a path rule matches the
normalised path inside it (never one with `..` or an absolute one), and a shell rule never
approves a command with an argument that names a path outside it (`../x`, `/x`, `~/x`, a link
in the workspace that leads out, or such a value after an option's `=`).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Iterable

    from agentctl.domain.session import Grant
    from agentctl.tools.base import Subject, Tool

# Characters that make `sh -c` do more than run one program with arguments: chaining (; & |),
# redirection (< >), substitution ($ `), subshells ( ), and a second line. Any of them, even
# quoted, means the command needs a human's yes.
SHELL_CONTROL = frozenset(";&|<>$`()\n\r")

YES = frozenset({"y", "yes", "ok", "allow"})
ALWAYS = frozenset({"a", "always"})
NO = frozenset({"", "n", "no"})
REFUSED = "Error: the user did not allow this action. Do something else or ask them."


def is_yes(answer: str) -> bool:
    return answer.strip().lower() in YES


@dataclass(frozen=True)
class Answer:
    """What a person's answer to an approval means: `allowed` (once, or `always` for the rest
    of the session) or refused; `words` are what the model gets back when refused."""

    allowed: bool
    always: bool = False
    words: str | None = None  # the refusal's text for the model (their own words, if any)


def read_answer(text: str) -> Answer:
    """y allows once; a allows for the rest of the session; n (or nothing) refuses; any other
    text refuses and is the user's words to the model."""
    word = text.strip().lower()
    if word in YES:
        return Answer(allowed=True)
    if word in ALWAYS:
        return Answer(allowed=True, always=True)
    if word in NO:
        return Answer(allowed=False, words=REFUSED)
    return Answer(allowed=False, words=f"The user refused: {text.strip()}")


def grant_for(tool: str, subject: Subject) -> tuple[str, str | None]:
    """What an `a` allows: the tool, and for a command that exact command only."""
    return tool, subject.command


def describe_grant(tool: str, command: str | None) -> str:
    return f"{tool}: {command}" if command is not None else tool


def granted(grants: Iterable[Grant], session_id: str, tool: str, subject: Subject) -> Grant | None:
    """The user's `a` that covers this call in this session, if any. A grant names the session
    that recorded it: a fork, a new session, does not inherit it."""
    command = subject.command
    for grant in grants:
        if grant.session != session_id or grant.tool != tool:
            continue
        if grant.command is None or grant.command == command:
            return grant
    return None


@runtime_checkable
class Checked(Protocol):
    """A tool that can tell, before asking anyone, that a call will fail (an edit whose `old`
    text does not occur exactly once): the model is told at once instead."""

    def known_failure(self, arguments: dict[str, Any]) -> str | None: ...


def has_control_syntax(command: str) -> bool:
    return any(ch in SHELL_CONTROL or (ord(ch) < 32 and ch != "\t") for ch in command)


def command_words(command: str) -> list[str] | None:
    """The argument vector `sh -c` would run, or None when it is not one plain command."""
    if has_control_syntax(command):
        return None
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes
        return None
    return words or None


def words_match(rule: list[str], words: list[str]) -> bool:
    """Each rule word is a glob for one argument; a final lone `*` stands for any further
    arguments (none included)."""
    if rule and rule[-1] == "*":
        fixed = rule[:-1]
        return len(words) >= len(fixed) and all(
            fnmatchcase(w, r) for r, w in zip(fixed, words, strict=False)
        )
    return len(words) == len(rule) and all(
        fnmatchcase(w, r) for r, w in zip(rule, words, strict=True)
    )


# Where a path can start inside one argument: the word itself, after an option's `=` (or `:` and
# `,` of a list), and after a one-letter option it is glued to (`-s../x`, as argparse takes it).
_VALUE_STARTS = re.compile(r"(?:^-[A-Za-z]|[=:,])")
_GLOB = frozenset("*?[")


def _candidates(word: str) -> list[str]:
    """The parts of one argument that a program may take as a path: short options may be
    bundled, the last taking the rest as its value (`tar -cf/x`, `cp -vt../x`), so after a
    single `-` every place past the first letter can start one."""
    out = [word]
    for found in _VALUE_STARTS.finditer(word):
        out.append(word[found.end() :])
    if word.startswith("-") and not word.startswith("--"):
        out.extend(word[i:] for i in range(2, len(word)))
    return [c for c in out if c]


def _leaves(candidate: str, root: Path | None) -> bool:
    """Whether one path-like text names a place outside the workspace at `root`."""
    if candidate.startswith(("/", "~")):  # absolute, or the home folder as sh expands it
        return True
    parts = candidate.split("/")
    if ".." in parts:
        return True
    # sh expands globs: `.*/x` or `.[.]/x` reach `..`; a glob after a leading dot asks.
    if any(p.startswith(".") and _GLOB & set(p) for p in parts):
        return True
    if root is None:
        return False
    try:  # a link planted in the workspace that leads out
        return not (root / candidate).resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):
        return True


def names_outside(rule: list[str], words: list[str], root: Path | None = None) -> bool:
    """Whether any argument (or an option's value) that the rule did not spell out literally
    names a path outside the workspace."""
    chosen = [w for n, w in enumerate(words) if n >= len(rule) or rule[n] != w]
    return any(_leaves(c, root) for word in chosen for c in _candidates(word))


def inside_path(path: str) -> str | None:
    """The normalised relative path a path rule is matched against; None for an absolute path
    or one with a `..` component (never approved by a rule, whatever it would normalise to)."""
    if not path or "\0" in path or path.startswith(("/", "~")):
        return None
    if ".." in path.split("/"):
        return None
    normal = posixpath.normpath(path)
    return None if normal in (".", "") or normal.startswith("..") else normal


@dataclass(frozen=True)
class Rule:
    """One entry of a task's `allow` list: `write_file`, `write_file:notes/*`,
    `run_shell:pytest *` (pytest with any arguments), `run_shell:python3 -m unittest`."""

    tool: str
    pattern: str | None

    @classmethod
    def parse(cls, text: str) -> Rule:
        tool, sep, pattern = text.partition(":")
        return cls(tool.strip(), pattern.strip() if sep else None)

    def allows(self, tool: Tool, arguments: dict[str, Any], root: Path | None = None) -> bool:
        """Whether this rule approves the call; `root` is the workspace (for links out)."""
        from agentctl.tools.base import SubjectType, approval_subject, named_by

        if not named_by(tool, self.tool):
            return False
        subject = approval_subject(tool, arguments)
        if subject.type is SubjectType.COMMAND:
            # A command is approved only by a rule that names it, and never when an argument
            # reaches outside the workspace.
            words = command_words(subject.text)
            if words is None or self.pattern is None:
                return False
            try:
                rule_words = shlex.split(self.pattern)
            except ValueError:
                return False
            return words_match(rule_words, words) and not names_outside(rule_words, words, root)
        if self.pattern is None:
            return True
        if subject.type is SubjectType.PATH:
            path = inside_path(subject.text)
            return path is not None and fnmatchcase(path, self.pattern)
        return False  # a pattern, and nothing of the call to match it against


@dataclass(frozen=True)
class ApprovalPolicy:
    """Which calls run without asking: reads always; the rest with --yes or when a rule of the
    task's allow-list names them; with `auto_confined` (the setting approval = "auto-sandboxed",
    where the workspace is snapshotted) also every call whose tool says its effects are confined
    to the workspace: a file write, a command sandboxed without network."""

    yes: bool = False
    allow: tuple[str, ...] = ()
    auto_confined: bool = False
    # A yes or a grant recorded at or before this checkpoint never counts: it was there before
    # this user took the session (an import, a move, another user's store: trust.py).
    since: int = 0

    def counts(self, recorded_at: int, head: int) -> bool:
        """Whether a yes (or grant) recorded at checkpoint `recorded_at` is one this user gave:
        after they took the session, and not after the head that holds it (a number a file
        made up)."""
        return self.since < recorded_at <= head

    def needs_approval(self, tool: Tool, arguments: dict[str, Any]) -> bool:
        from agentctl.tools.base import SideEffect, effects_of

        if tool.side_effect is SideEffect.READ or self.yes:
            return False
        if self.auto_confined and effects_of(tool).confined:
            return False
        root = _root_of(tool)
        rules = [Rule.parse(rule) for rule in self.allow]
        if getattr(tool, "destructive", False) is True:
            # A tool that says it destroys is approved only by a rule that names it whole,
            # never by a wildcard: the hint can add a question, never take one away.
            rules = [r for r in rules if not _GLOB & set(r.tool)]
        return not any(rule.allows(tool, arguments, root) for rule in rules)

    def needs_approval_to_remember(self) -> bool:
        """A preference outlives the session and goes into every later system prompt, so the
        user sees it first unless they said --yes or the task allows `remember`."""
        return not (self.yes or any(Rule.parse(r).tool == "remember" for r in self.allow))


def _root_of(tool: Tool) -> Path | None:
    """The workspace a tool works in, when it says (the file and shell tools do)."""
    workspace = getattr(tool, "workspace", None)
    root = getattr(workspace, "root", None)
    return root if isinstance(root, Path) else None


@runtime_checkable
class Previewable(Protocol):
    """A tool that can say what a call would change (a write's path, size and diff)."""

    def preview(self, arguments: dict[str, Any]) -> str: ...


def question(tool: Tool, arguments: dict[str, Any]) -> str:
    """The exact action put to the user: the whole command, or the path and what changes.
    Rendering makes control characters visible; the text itself is kept exact."""
    from agentctl.tools.base import SubjectType, approval_subject

    subject = approval_subject(tool, arguments)
    if subject.type is SubjectType.COMMAND:
        command = subject.text
        # The length where the answer is typed: the start of a long command may have scrolled
        # away, and the user is told there is more to read.
        size = (
            f"(the command above is {len(command):,} characters, all shown) "
            if _long(command)
            else ""
        )
        return f"Allow {tool.name}?\n  $ {one_line(command)}\n{size}[y/N]"
    detail = ""
    if isinstance(tool, Previewable):
        try:
            detail = "\n" + tool.preview(arguments)
        except Exception as exc:  # a preview must never stop the question from being asked
            detail = f"\n(no preview: {exc})"
    if subject.type is SubjectType.PATH:
        return f"Allow {tool.name} {one_line(subject.text)}?{detail}\n[y/N]"
    return f"Allow {tool.name}?{detail}\n[y/N]"


LONG_COMMAND = 200  # characters: more than a line or two of a terminal


def _long(command: str) -> bool:
    return len(command) > LONG_COMMAND or "\n" in command


def one_line(text: str) -> str:
    """Text put to the user for approval, on one line: a line break shown as `\\x0a` and a tab
    as `\\x09`, as rendering shows every other control character. Forty newlines cannot push
    the start of a command off the screen and leave only its harmless end in view."""
    return text.replace("\n", "\\x0a").replace("\t", "\\x09")


def remember_question(key: str, value: str) -> str:
    return f"Remember for all future sessions: {key} = {value!r}? [y/N]"
