"""Shared fixtures: every test gets a private AGENTCTL_HOME and no real model configuration.

The autouse fixture also strips OPENAI_* variables, so a developer's key can never reach a test
(and a test can never reach the network).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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
# whose code starts one is in the `process` tier, found from its source so the tier cannot go
# stale. `pytest -m "not process"` is the edit-test loop; plain `pytest` runs everything.
PROCESS_WORDS = ("cli(", "subprocess.", "Popen(", "run_in_terminal(", "fork", "kill(")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    import inspect

    for item in items:
        function = getattr(item, "function", None)
        if function is None or item.get_closest_marker("process"):
            continue
        source = inspect.getsource(function)
        if any(word in source for word in PROCESS_WORDS):
            item.add_marker(pytest.mark.process)


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


@pytest.fixture
def pg_url(postgres: Any) -> str:
    """The URL of a new, empty database on the test server."""
    return str(postgres.database(f"t{next(_databases)}_{os.getpid()}"))


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


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    """Run `agentctl` in this process (typer's CliRunner): for exit-code and output contracts
    that need no real process. A Python exception escaping the CLI fails the test, as a
    traceback would fail the user."""
    from typer.testing import CliRunner

    from agentctl.cli import app

    result = CliRunner().invoke(app, list(args), env=env, input=stdin)
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
