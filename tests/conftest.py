"""Shared fixtures: every test gets a private AGENTCTL_HOME and no real model configuration.

The autouse fixture also strips OPENAI_* variables, so a developer's key can never reach a test
(and a test can never reach the network).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# A shell that starts the suite in the background (`.ci/run &`, nohup) leaves SIGINT ignored,
# and an ignored signal stays ignored across exec: every agentctl the tests start would then
# shrug off the Ctrl-C the interrupt tests send it. A handler of our own is reset at exec, so
# the processes the tests start take SIGINT as a terminal's Ctrl-C gives it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_tasks"
CLEARED = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "AGENTCTL_MODEL",
    "AGENTCTL_STORE",
    "AGENTCTL_SCRIPTED_DELAY",
    "AGENTCTL_SCRIPTED_LOG",
    "AGENTCTL_DEBUG",
    "AGENTCTL_CONFIG",
    "AGENTCTL_CONTEXT_WINDOW",
    "AGENTCTL_CONTEXT_STRATEGY",
    "AGENTCTL_LEASE_TTL",
    "AGENTCTL_RETRIES",
    "AGENTCTL_SNAPSHOT_MAX_FILE",
    "AGENTCTL_SNAPSHOT_MAX_CAPTURE",
    "AGENTCTL_SANDBOX",
    "AGENTCTL_NETWORK",
    "AGENTCTL_APPROVAL",
    "AGENTCTL_HOSTNAME",
    "AGENTCTL_USER",
    "PGPASSWORD",
    "PGPASSFILE",
)


# What makes a test slow is a real process (each `agentctl` pays the ~1 s openai import): a test
# that starts one is in the `process` tier. The tier is found from what the test's code *does*:
# the names its code (and the helpers and fixtures of ours it uses) calls, never words in its
# source, so a test named "fork" or a string "kill(" is not slow for it. A guard below fails a
# fast-tier test that starts an agentctl process all the same, so the tier cannot go stale.
# `pytest -m "not process"` is the edit-test loop; plain `pytest` runs everything.
PROCESS_NAMES = frozenset(
    {"cli", "subprocess", "Popen", "run_in_terminal", "kill", "killpg", "fork", "forkpty", "spawn"}
)


def _calls_a_process(function: object, seen: set[object]) -> bool:
    """Whether `function`'s code names a process starter, or calls a helper of the tests (a
    function defined under tests/) that does, however deep."""
    code = getattr(function, "__code__", None)
    if code is None or function in seen:
        return False
    seen.add(function)
    namespace = getattr(function, "__globals__", {})
    stack = [code]
    while stack:
        current = stack.pop()
        for name in current.co_names:
            if name in PROCESS_NAMES:
                return True
            helper = namespace.get(name)
            if _is_ours(helper) and _calls_a_process(helper, seen):
                return True
        stack.extend(c for c in current.co_consts if isinstance(c, type(code)))
    return False


def _is_ours(obj: object) -> bool:
    code = getattr(obj, "__code__", None)
    return code is not None and str(ROOT / "tests") in code.co_filename


GUARDS = frozenset({"_fast_tier_starts_no_agentctl"})  # they name Popen but start nothing


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        function = getattr(item, "function", None)
        if function is None or item.get_closest_marker("process"):
            continue
        seen: set[object] = set()
        fixtures = getattr(item, "_fixtureinfo", None)
        starters = [function]
        if fixtures is not None:
            for defs in fixtures.name2fixturedefs.values():
                starters += [d.func for d in defs if _is_ours(d.func) and d.argname not in GUARDS]
        if any(_calls_a_process(f, seen) for f in starters):
            item.add_marker(pytest.mark.process)


@pytest.fixture(autouse=True)
def _fast_tier_starts_no_agentctl(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test left in the fast tier that starts an `agentctl` process fails and says so: the
    tiering above missed what it does (git and shell commands the code under test runs are
    fine: they cost milliseconds)."""
    if request.node.get_closest_marker("process"):
        return
    original = subprocess.Popen.__init__

    def guarded(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        argv = [str(a) for a in args] if isinstance(args, list | tuple) else [str(args)]
        if argv[:1] == [sys.executable] and "agentctl" in argv[1:3]:
            pytest.fail("this test starts an agentctl process: mark it @pytest.mark.process")
        original(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A PostgreSQL server for the whole run: AGENTCTL_TEST_POSTGRES_URL's, or a throwaway
    cluster from this machine's binaries. Where none can be had the PostgreSQL tests skip with
    the reason, unless AGENTCTL_REQUIRE_POSTGRES is set (.ci/run sets it): then they fail."""
    from agentctl.testing.postgres import ExternalPostgres, ThrowawayPostgres, Unavailable

    external = os.environ.get("AGENTCTL_TEST_POSTGRES_URL")
    if external:
        yield ExternalPostgres(external)
        return
    try:
        import psycopg  # noqa: F401

        server = ThrowawayPostgres()
        server.start()
    except (Unavailable, ImportError) as exc:
        if os.environ.get("AGENTCTL_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here and cannot be started: {exc}")
        pytest.skip(f"no PostgreSQL for the PostgreSQL tests: {exc}")
    try:
        yield server
    finally:
        server.stop()


_databases = iter(range(1, 1_000_000))
_emptied: list[str] = []  # databases a test gave back and that were emptied for the next


@pytest.fixture
def pg_url(postgres: Any) -> Iterator[str]:
    """The URL of an empty database on the test server: a new one, or one an earlier test used
    that `reset_database` emptied (nothing of that test left in it)."""
    from agentctl.testing.postgres import reset_database

    url = (
        _emptied.pop() if _emptied else str(postgres.database(f"t{next(_databases)}_{os.getpid()}"))
    )
    yield url
    if reset_database(url):
        _emptied.append(url)


@pytest.fixture(autouse=True)
def agentctl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.setenv("AGENTCTL_HOME", str(home))
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    return home


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def events(self) -> list[dict[str, Any]]:
        """The JSON lines of `run`/`resume`/`watch --json`, one event each."""
        return [json.loads(line) for line in self.stdout.splitlines()]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """Run the real `agentctl` in a new process, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "agentctl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@functools.cache
def _runner() -> Any:
    """typer's CliRunner, except that the click command it runs for our app is built once per
    process: typer builds it from every command's signature at each invoke (evaluating every
    type hint: 25-65 ms a call, about a third of the fast tier's CPU). A build per call tests
    nothing the first does not: `agentctl` builds it once per process too."""
    import typer.main
    import typer.testing

    from agentctl.terminal.cli import app

    built = typer.main.get_command(app)
    build = typer.testing._get_command
    typer.testing._get_command = lambda given: built if given is app else build(given)
    return typer.testing.CliRunner()


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    """Run `agentctl` in this process (typer's CliRunner): for exit-code and output contracts
    that need no real process. A Python exception escaping the CLI fails the test, as a
    traceback would fail the user."""
    from agentctl.terminal.cli import app

    result = _runner().invoke(app, list(args), env=env, input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, result.stderr)


def _url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite://{tmp_path / 'store' / 'agentctl.db'}"
    return f"json://{tmp_path / 'jsonstore'}"


@pytest.fixture(params=["sqlite", "json", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend a user can choose, as a URL for --store / AGENTCTL_STORE."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return _url(request.param, tmp_path)


@pytest.fixture
def store_kind(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL of the backend a test names with indirect parametrization ("postgres": a
    new database on the test server)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return _url(request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """For tests of mechanisms above the store, where one backend is enough."""
    return _url("sqlite", tmp_path)
