"""A throwaway PostgreSQL server for tests and benchmarks, from the machine's own binaries.

`initdb` refuses to run as root, so when we are root the cluster belongs to the `postgres`
user and every server command runs through `runuser -u postgres --`. The cluster lives in a
fresh folder under the system temp dir (not pytest's: that one is private to root), listens on
127.0.0.1 at a free port with password authentication (so the tests see the same URL and
error paths a team's server gives), and is removed on stop.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PASSWORD = "agentctl-throwaway-pw"
USER = "agentctl"
DATABASE = "agentctl"


class Unavailable(Exception):
    """No PostgreSQL can be started here (the reason says why)."""


def find_bindir() -> Path:
    """The folder of initdb and pg_ctl: `pg_config --bindir`, else Debian's layout."""
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(out.stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not versions:
        raise Unavailable("no PostgreSQL server binaries (initdb) on this machine")
    return versions[-1].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayPostgres:
    """Start with `start()` (returns the URL, password included), stop with `stop()`.
    `durable=False` turns fsync off: tests do not need power-loss safety, benchmarks do.
    `parent`: the folder the cluster goes in (the system temp dir by default; a benchmark puts
    it on tmpfs, /dev/shm, for a disk whose fsync costs nothing); `settings`: more server
    settings (`-c name=value` each)."""

    def __init__(
        self, durable: bool = False, parent: str | None = None, settings: tuple[str, ...] = ()
    ) -> None:
        self.durable = durable
        self.settings = settings
        self.bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="agentctl-pg-", dir=parent))
        self.data = self.root / "data"
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable("running as root and there is no `postgres` user") from None
            if not shutil.which("runuser"):
                raise Unavailable("running as root and `runuser` is not installed")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, check=False, timeout=120
        )
        if done.returncode != 0:
            raise Unavailable(f"{Path(args[0]).name} failed: {(done.stderr or done.stdout)[-400:]}")

    def start(self) -> str:
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self._as:
            owner = pwd.getpwnam("postgres")
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.start_server()
        import psycopg

        with psycopg.connect(
            f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        return self.url

    def database(self, name: str) -> str:
        """A new, empty database on this server: its URL."""
        return create_database(self.url, name)

    def start_server(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        options += "".join(f" -c {setting}" for setting in self.settings)
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop_server(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        # Immediate: the cluster is thrown away, so its shutdown checkpoint (writing every dirty
        # page of a few hundred test databases, most of the 47 s a test run spent here) is waste.
        with contextlib.suppress(Unavailable, subprocess.TimeoutExpired):
            self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            )
        shutil.rmtree(self.root, ignore_errors=True)


def create_database(url: str, name: str) -> str:
    """Create database `name` on the server `url` names; the URL of the new database."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    if not name.replace("_", "").isalnum():
        raise ValueError(f"database name {name!r}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def reset_database(url: str) -> bool:
    """Empty the database `url` names for another test: its connections are closed and
    agentctl's schema dropped. True only when nothing of a test is left in it (no other schema,
    nothing in `public`); a database that cannot be reset is not given out again. Reusing a
    database costs a few milliseconds where creating one copies a template (a quarter second
    and 7.5 MB of files each)."""
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            conn.execute("DROP SCHEMA IF EXISTS agentctl CASCADE")
            left = conn.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
                " AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'"
            ).fetchone()
            schemas = conn.execute(
                "SELECT count(*) FROM pg_namespace WHERE nspname NOT IN"
                " ('public', 'pg_catalog', 'information_schema', 'pg_toast')"
                " AND nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%'"
            ).fetchone()
    except psycopg.Error:
        return False
    return left == (0,) and schemas == (0,)


class ExternalPostgres:
    """A server someone else runs (AGENTCTL_TEST_POSTGRES_URL): databases are made on it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def database(self, name: str) -> str:
        return create_database(self.url, name)

    def stop(self) -> None:
        pass
