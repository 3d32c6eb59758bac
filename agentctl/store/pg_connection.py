"""A PostgreSQL connection as the store and the workers use it: options from the URL, every
driver error as one StoreError naming the place, a connection the server dropped opened again.

One plain connection per process, autocommit; `prepare_threshold` (URL query, e.g.
`?prepare_threshold=0` behind PgBouncer in transaction mode) is passed to psycopg. libpq reads
PGPASSWORD, ~/.pgpass and sslmode as usual. A connection the server dropped while the model was
thinking is opened again on the next use (a read is tried once more; a write whose answer was
lost is the store's to check). psycopg is imported only when a PostgreSQL URL is opened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from agentctl.errors import StoreError
from agentctl.redact import redact_text, redact_url
from agentctl.store.postgres_migrations import S

if TYPE_CHECKING:
    import psycopg

_DIALECT: dict[str, str] = {}  # the shared reads (store/sql.py) in psycopg's terms


def connection_options(url: str) -> tuple[str, dict[str, Any]]:
    """The libpq URL (agentctl's own query parameters taken out) and psycopg's options."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in ("prepare_threshold", "connect_timeout")}
    libpq = [(k, v) for k, v in query if k != "prepare_threshold"]
    options: dict[str, Any] = {"autocommit": True, "connect_timeout": 10}
    try:
        if "prepare_threshold" in ours:
            value = ours["prepare_threshold"].lower()
            options["prepare_threshold"] = None if value in ("none", "off") else int(value)
        if "connect_timeout" in ours:
            options["connect_timeout"] = int(ours["connect_timeout"])
    except ValueError:
        raise StoreError(f"store {redact_url(url)}: prepare_threshold must be a number") from None
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    clean = urlunsplit((scheme, parts.netloc, parts.path, urlencode(libpq), parts.fragment))
    return clean, options


class PgConnection:
    """The connection half of PostgresStore."""

    url: str
    shown: str  # the URL with its password masked
    _dsn: str
    _options: dict[str, Any]
    _conn: psycopg.Connection[Any]

    def _open(self, url: str) -> None:
        self.url, self.shown = url, redact_url(url, keep_user=True)
        self._dsn, self._options = connection_options(url)
        self._conn = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        try:
            return psycopg.connect(self._dsn, **self._options)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot open PostgreSQL store {self.shown}: {first_line(exc)}"
            ) from None

    @contextmanager
    def _errors(self, session_id: str | None = None) -> Iterator[None]:
        """psycopg's errors, and rows that do not decode, as one StoreError naming the place."""
        import psycopg

        where = f"store {self.shown}" + (f", session {session_id}" if session_id else "")
        try:
            yield
        except psycopg.Error as exc:
            raise StoreError(f"{where}: {first_line(exc)}") from None
        except (ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
            raise StoreError(
                f"{where}: cannot be read ({type(exc).__name__}: {str(exc)[:200]})",
                hint="agentctl verify",
            ) from None

    def _db(self) -> psycopg.Connection[Any]:
        """The connection, opened again if the server dropped it (a restart, an idle timeout
        while the model was thinking): known only after a failure, so `_retrying` asks."""
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if sql not in _DIALECT:  # the shared reads (store/sql.py) in psycopg's terms
            _DIALECT[sql] = sql.replace("{T}", f"{S}.").replace("?", "%s")
        with self._errors():
            rows: list[Any] = self._retrying(
                lambda db: db.execute(_DIALECT[sql], params).fetchall()
            )
        return rows

    def _reading(self, session_id: str | None = None) -> AbstractContextManager[None]:
        return self._errors(session_id)

    def _retrying(self, read: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        """A read, tried once more on a new connection when the old one turned out dead."""
        import psycopg

        try:
            return read(self._db())
        except psycopg.OperationalError:
            if not self._conn.broken:
                raise
            return read(self._db())

    def close(self) -> None:
        self._conn.close()

    def with_connection(
        self, work: Callable[[psycopg.Connection[Any]], Any], session_id: str | None = None
    ) -> Any:
        """Run `work` on this store's connection (opened again if the server dropped it), its
        errors as StoreError: the hook of the work queue (store/pg_queue.py)."""
        with self._errors(session_id):
            return self._retrying(work)


def first_line(exc: BaseException) -> str:
    """The first line of a driver error, any URL in it masked."""
    lines = str(exc).strip().splitlines()
    return redact_text(lines[0][:300]) if lines else type(exc).__name__
