"""Git's ignore rules (`.gitignore`, `info/exclude`), decided in process as git decides them.

A capture in process (workspace/incremental.py) must leave out exactly what `git ls-files
--others --exclude-standard` leaves out. This follows git's dir.c and wildmatch.c: a NUL ends a
line, its trailing spaces go unless escaped, `!` negates, a trailing `/` matches folders only, a
pattern without a `/` matches a name at any depth and one with a `/` is anchored at its file's
folder; `*`, `?` and brackets never match a `/`, `**` between slashes matches any folders; the
last matching line wins, a deeper `.gitignore` over a shallower one over `info/exclude`, and
nothing under an ignored folder comes back. Matching is on bytes (a pattern and a name are read
as Latin-1, one character per byte), as git's is. What this does not follow exactly (character
classes such as `[[:space:]]`) raises `Unsupported`, and the capture is left to git.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class Unsupported(Exception):
    """A pattern this module does not decide exactly as git would."""


_NEVER = "(?!)"
_GLOB_SPECIAL = "*?[\\"


@dataclass(frozen=True)
class Pattern:
    negative: bool
    folders_only: bool
    anywhere: bool  # no '/' in it: matched against the last name of a path
    base: str  # the folder of its .gitignore ("" or "a/b/"), Latin-1
    regex: re.Pattern[str]

    def matches(self, path: str, name: str, is_folder: bool) -> bool:
        if self.folders_only and not is_folder:
            return False
        if self.anywhere:
            return self.regex.fullmatch(name) is not None
        if not path.startswith(self.base):
            return False
        return self.regex.fullmatch(path, len(self.base)) is not None


def parse(text: bytes, base: bytes) -> list[Pattern]:
    """The patterns of one ignore file whose folder is `base` (b"" or b"a/b/")."""
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    out = []
    for raw in text.split(b"\n"):
        if not raw or raw.startswith(b"#"):
            continue
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        # Git reads each line as a C string: a NUL ends it (what follows is no pattern).
        line = _trim(raw.split(b"\0", 1)[0]).decode("latin-1")
        pattern = _compile(line, base.decode("latin-1"))
        if pattern is not None:
            out.append(pattern)
    return out


def _trim(line: bytes) -> bytes:
    """Trailing spaces removed, unless escaped (git's trim_trailing_spaces)."""
    last_space = None
    at = 0
    while at < len(line):
        char = line[at : at + 1]
        if char == b" ":
            if last_space is None:
                last_space = at
        elif char == b"\\":
            at += 1
            if at >= len(line):
                return line
            last_space = None
        else:
            last_space = None
        at += 1
    return line[:last_space] if last_space is not None else line


def _compile(line: str, base: str) -> Pattern | None:
    negative = line.startswith("!")
    if negative:
        line = line[1:]
    folders_only = line.endswith("/")
    if folders_only:
        line = line[:-1]
    if not line:
        return None  # matches no name
    anywhere = "/" not in line
    if anywhere:
        # Matched against a name (no '/' in it), so no difference between git's modes.
        body = _translate(line, pathname=True)
    else:
        prefix = next((i for i, c in enumerate(line) if c in _GLOB_SPECIAL), len(line))
        if line.startswith("/"):
            line, prefix = line[1:], prefix - 1
        # Git compares the literal prefix itself, then wildmatches the rest as a pattern of
        # its own (so a `**` right after the prefix counts as a pattern's first).
        body = re.escape(line[:prefix]) + _translate(line[prefix:], pathname=True)
    return Pattern(negative, folders_only, anywhere, base, re.compile(body, re.DOTALL))


def _translate(pattern: str, pathname: bool) -> str:
    """A regular expression that matches what git's wildmatch(pattern) matches."""
    out = []
    at, end = 0, len(pattern)
    while at < end:
        char = pattern[at]
        if char == "\\":
            if at + 1 >= end:
                return _NEVER  # a trailing backslash matches nothing
            out.append(re.escape(pattern[at + 1]))
            at += 2
        elif char == "?":
            out.append("[^/]")
            at += 1
        elif char == "*":
            stars = at
            while at < end and pattern[at] == "*":
                at += 1
            if at - stars == 1 or not pathname:
                out.append("[^/]*")
                continue
            after_slash = stars == 0 or pattern[stars - 1] == "/"
            if after_slash and at < end and pattern[at] == "/":
                out.append("(?:.*/)?")  # "**/": any folders, none included
                at += 1
            elif after_slash and (at == end or pattern[at : at + 2] == "\\/"):
                out.append(".*")
            else:
                out.append("[^/]*")  # a `**` inside a name is a `*`
        elif char == "[":
            matched, at = _bracket(pattern, at)
            if not matched:
                return _NEVER
            out.append("[" + "".join(_class_char(c) for c in sorted(matched)) + "]")
        else:
            out.append(re.escape(char))
            at += 1
    return "".join(out)


def _class_char(char: str) -> str:
    return "\\" + char if char in "\\]^-[" else char


def _bracket(pattern: str, at: int) -> tuple[set[str], int]:
    """The characters (bytes) a bracket at `at` matches (never '/'), and where it ends.
    Follows wildmatch.c's loop for every possible character."""
    matched: set[str] = set()
    end = None
    for code in range(1, 256):
        if code == ord("/"):
            continue
        hit, end = _bracket_one(pattern, at, chr(code))
        if hit:
            matched.add(chr(code))
    if end is None:
        raise Unsupported("bracket")
    return matched, end


def _bracket_one(pattern: str, at: int, t_ch: str) -> tuple[bool, int | None]:
    """wildmatch.c's bracket for one text character: (matched, index after the bracket), or
    (False, None) where git aborts the whole match (an unclosed bracket)."""
    n = len(pattern)
    p = at + 1

    def ch(i: int) -> str:
        return pattern[i] if i < n else ""

    p_ch = ch(p)
    if p_ch == "^":
        p_ch = "!"
    negated = p_ch == "!"
    if negated:
        p += 1
        p_ch = ch(p)
    prev_ch = ""
    matched = False
    while True:
        if not p_ch:
            return False, None
        if p_ch == "\\":
            p += 1
            p_ch = ch(p)
            if not p_ch:
                return False, None
            if t_ch == p_ch:
                matched = True
        elif p_ch == "-" and prev_ch and ch(p + 1) and ch(p + 1) != "]":
            p += 1
            p_ch = ch(p)
            if p_ch == "\\":
                p += 1
                p_ch = ch(p)
                if not p_ch:
                    return False, None
            if prev_ch <= t_ch <= p_ch:
                matched = True
            p_ch = ""
        elif p_ch == "[" and ch(p + 1) == ":":
            raise Unsupported("character class")
        elif t_ch == p_ch:
            matched = True
        prev_ch = p_ch
        p += 1
        p_ch = ch(p)
        if p_ch == "]":
            break
    return matched != negated, p + 1


class Rules:
    """The ignore patterns in force in one folder: `info/exclude`'s, then each `.gitignore`
    from the root down (later ones win)."""

    def __init__(self, patterns: tuple[Pattern, ...] = ()) -> None:
        self.patterns = patterns

    def below(self, more: list[Pattern]) -> Rules:
        return Rules(self.patterns + tuple(more)) if more else self

    def ignored(self, path: bytes, name: bytes, is_folder: bool) -> bool:
        text, base = path.decode("latin-1"), name.decode("latin-1")
        for pattern in reversed(self.patterns):
            if pattern.matches(text, base, is_folder):
                return not pattern.negative
        return False
