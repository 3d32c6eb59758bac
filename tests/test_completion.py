"""Shell completion played by a hostile session name, in real bash, zsh and fish (issue 29).

A session's name is text from the store: another user's, or an import's. Completing it must
put it on the command line as one argument, never as shell code: bash inserted it raw (`fix;
touch PWNED` ran `touch` at Enter) and zsh's script `eval`ed a string a backslash broke out of
(`\\$(touch PWNED)` ran at Tab). Each shell is driven as a user drives it: bash through its
completion function and COMPREPLY, zsh and fish at a real terminal (zsh's zpty, a pty for fish).
A test skips where its shell is not installed; `.ci/run` installs them.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentctl.config import Settings
from agentctl.store import open_store
from agentctl.testing.store_spec import draft, info

pytestmark = pytest.mark.process

HOSTILE = {
    "fa11ed01": "fix; touch PWNED",
    "fa11ed02": "\\$(touch PWNED2)",
    "fa11ed03": "`touch PWNED3` and 'quotes' \"too\" *",
}


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """A store with sessions named to attack the shell, and the environment a shell needs to
    run this checkout's `agentctl`."""
    store = open_store(Settings.load().store_url)
    try:
        for session_id, name in HOSTILE.items():
            store.create_session(info(session_id), draft(None, 1))
            store.set_labels(session_id, name, ())
    finally:
        store.close()
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1",
        "HOME": str(tmp_path),
        "TERM": "xterm",
    }


def script(shell: str, env: dict[str, str], tmp_path: Path) -> Path:
    out = subprocess.run(
        ["agentctl", "--show-completion", shell],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    path = tmp_path / f"completion.{shell}"
    path.write_text(out)
    return path


def no_command_ran(where: Path) -> None:
    assert not [p.name for p in where.glob("PWNED*")]


def needs(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed (apt-get install {shell})")


def test_bash_inserts_each_name_as_one_argument(shell_env: dict[str, str], tmp_path: Path) -> None:
    needs("bash")
    source = script("bash", shell_env, tmp_path)
    # What bash puts on the command line is COMPREPLY, as it is; `eval` of `printf … WORD`
    # is the user pressing Enter on `agentctl show WORD`.
    driver = (
        f"source {source}; COMP_WORDS=(agentctl show ''); COMP_CWORD=2; "
        "_agentctl_completion agentctl; "
        'for word in "${COMPREPLY[@]}"; do eval "printf \'<%s>\\n\' $word"; done'
    )
    done = subprocess.run(
        ["bash", "--norc", "-c", driver],
        env=shell_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    no_command_ran(tmp_path)
    assert done.returncode == 0, done.stderr
    shown = set(re.findall(r"<(.*)>", done.stdout))
    assert shown == set(HOSTILE) | set(HOSTILE.values())


ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty -b z 'zsh -f -i'
zpty -w z 'PS1=""; autoload -U compinit; compinit -u -D; source '"$1"
zpty -w z 'bindkey "^I" complete-word; setopt nobeep'
zpty -w z 'show() { print -r -- "AR""G<${(Q)${(z)BUFFER}[3]}>"; BUFFER=""; zle accept-line }'
zpty -w z 'zle -N show; bindkey "^X" show'
zpty -n -w z "agentctl show $2"$'\t\x18'
zpty -r -m z out '*ARG<*>*'
print -r -- "$out"
zpty -d z
"""


@pytest.mark.parametrize("prefix", ["", "fi", "\\\\"])
def test_zsh_never_evaluates_a_name_and_inserts_it_quoted(
    shell_env: dict[str, str], tmp_path: Path, prefix: str
) -> None:
    needs("zsh")
    source = script("zsh", shell_env, tmp_path)
    driver = tmp_path / "drive.zsh"
    driver.write_text(ZSH_DRIVER)
    done = subprocess.run(
        ["zsh", "-f", str(driver), str(source), prefix],
        env=shell_env,
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    no_command_ran(tmp_path)  # the completion was offered, and nothing ran
    found = re.search(rb"ARG<([^>\r\n]*)>", done.stdout.replace(b"\r", b"")[-2000:])
    assert found, done.stdout[-500:]
    if prefix == "fi":  # the one name that starts so: inserted as exactly that one argument
        assert found.group(1).decode() == HOSTILE["fa11ed01"]


def test_fish_inserts_each_name_as_one_argument(shell_env: dict[str, str], tmp_path: Path) -> None:
    """fish quotes what it inserts (this held before issue 29 too; kept so)."""
    needs("fish")
    import pty

    source = script("fish", shell_env, tmp_path)
    pid, fd = pty.fork()
    if pid == 0:  # the child: an interactive fish at a terminal
        os.chdir(tmp_path)
        os.execvpe("fish", ["fish", "--no-config", "-i"], shell_env)
    try:
        os.write(fd, f"source {source}; ".encode())
        os.write(fd, b"bind \\cx 'echo ARG\\<(commandline -o)[3]\\>; commandline \"\"'\r")
        os.write(fd, b"agentctl show fi\t\x18")
        seen = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not re.search(rb"ARG<[^>\r\n]*>", seen):
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(fd, 1 << 16)
                except OSError:
                    break
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)
    found = re.search(rb"ARG<([^>\r\n]*)>", seen)
    assert found, seen[-500:]
    assert found.group(1).decode() == HOSTILE["fa11ed01"]
    no_command_ran(tmp_path)


def test_a_name_with_a_control_character_is_not_offered(tmp_path: Path) -> None:
    from agentctl.usecases import sessions

    store = open_store(Settings.load().store_url)
    try:
        store.create_session(info("c0ffee01"), draft(None, 1))
        store.set_labels("c0ffee01", "two\nlines", ())
    finally:
        store.close()
    assert sessions.complete(Settings.load(), "") == ["c0ffee01"]
