"""What every model adapter shares: the request in flight and the retry policy.

An adapter (openai_chat.py: Chat Completions) knows its wire: how to open a request, read a
reply and what a failure means. The rest is here, so another adapter reuses it whole. A request
goes out on a thread (`InFlight`), and the caller goes on once it is written, to count and
commit while the model thinks; the reply is read on the caller's thread, and retried there
(`read_reply`). Retries are agentctl's, not an SDK's, so the user is told each one and the total
stays bounded: what the adapter calls worth retrying (a `Retry`: 429, 5xx, refused connections)
waits with backoff, or as long as the server asked up to MAX_RETRY_AFTER_S; a longer wait is not
waited out, nor the server asked again: the error says when to resume. A part of the request the
server refused (a `Refused`) is left out by the adapter and the request sent again at once: no
attempt, once per part.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from agentctl.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agentctl.domain.session import Message, Prepared
    from agentctl.domain.toolspec import ToolSpec
    from agentctl.llm.replies import ModelReply, TextSink

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})  # HTTP answers worth a retry
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 600.0  # a server's own wait is honoured up to this, then resume is said


class Retry(Exception):
    """An attempt failed in a way another may not: `wait` is the server's own, if it said."""

    def __init__(self, reason: str, wait: float | None = None, status: int | None = None) -> None:
        self.reason = reason
        self.wait = wait
        self.status = status


class Refused(Exception):
    """The server refused a part of the request (a field, a form of the messages) that the
    adapter can leave out or replace: sent again without it, at once."""

    def __init__(self, field: str) -> None:
        self.field = field


class Pace(Protocol):
    """The pace of one model server shared by every worker (worker.py, issue 28): asked before
    each request is sent (it may wait), and told of each retry, with the HTTP status that
    caused it (a 429 slows the server down for every worker)."""

    def before_request(self) -> None: ...

    def retrying(self, status: int | None, wait: float) -> None: ...


class Wire(Protocol):
    """What an adapter gives the shared machinery."""

    @property
    def timeout(self) -> float:
        """Seconds for each whole reply."""
        ...

    @property
    def max_retries(self) -> int: ...

    def open(self, request: bytes, written: threading.Event | None = None) -> Any:
        """Send `request`; its reply's stream once the server started answering (setting
        `written` once the request is out). Fails with a Retry, a Refused or a ModelError."""
        ...

    def read(self, stream: Any, on_text: TextSink, deadline: float) -> ModelReply:
        """The whole reply; a Retry, a Refused or a ModelError."""
        ...

    def adapt(self, refused: Refused) -> None:
        """Leave out (or replace) what the server refused, from now on."""
        ...

    def notify(self, text: str) -> None: ...

    def sleep(self, seconds: float) -> None: ...

    @property
    def pace(self) -> Pace | None: ...


def come_back(wait: float) -> str:
    """The end of an error for a server that asks for a longer wait than agentctl waits."""
    at = time.strftime("%H:%M %Z", time.localtime(time.time() + wait)).strip()
    return (
        f"it asks to wait {wait:,.0f} s, longer than agentctl waits "
        f"({MAX_RETRY_AFTER_S:,.0f} s): resume after {at}"
    )


def read_reply(
    wire: Wire,
    build: Callable[[], bytes],
    request: bytes,
    first: Callable[[], Any],
    deadline: float,
    on_text: TextSink,
) -> ModelReply:
    """Read the reply of the first attempt (`request`, opened by `first`), then of each retry;
    after a refusal the request is made again by `build`."""
    attempts = wire.max_retries + 1
    attempt, opened = 1, first
    while True:
        try:
            return wire.read(opened(), on_text, deadline)
        except Refused as refused:
            wire.adapt(refused)
            request = build()
        except Retry as retry:
            if attempt == attempts:
                raise ModelError(f"{retry.reason} (gave up after {attempts} attempts)") from None
            wait = retry.wait if retry.wait is not None else min(MAX_BACKOFF_S, 0.5 * 2**attempt)
            if wait > MAX_RETRY_AFTER_S:
                raise ModelError(f"{retry.reason}; {come_back(wait)}") from None
            wire.notify(f"{retry.reason}; retrying in {wait:g} s ({attempt + 1}/{attempts})")
            if wire.pace is not None:
                wire.pace.retrying(retry.status, wait)
            wire.sleep(wait)
            attempt += 1
        deadline = time.monotonic() + wire.timeout
        opened = partial(wire.open, request)


class InFlight:
    """A request on its way (llm.PendingReply): its first attempt is opened by a thread, which
    sends it and waits for the server to start answering while the caller does its own work.
    The reply is read, and retried, on the caller's thread by `collect`."""

    def __init__(self, wire: Wire, build: Callable[[], bytes]) -> None:
        self._wire = wire
        self._build = build
        self._request = build()
        self._deadline = time.monotonic() + wire.timeout
        self._stream: Any = None
        self._error: BaseException | None = None
        written = threading.Event()
        self._thread = threading.Thread(
            target=self._open, args=(written,), name="model-request", daemon=True
        )
        self._thread.start()
        # Work done now would take the interpreter from the thread still writing the request:
        # the caller goes on once the request is out (the HTTP client's request hook), or the
        # attempt ended (it failed before that, or the hook never ran).
        written.wait(wire.timeout)

    def _open(self, written: threading.Event) -> None:
        try:
            self._stream = self._wire.open(self._request, written)
        except BaseException as exc:  # handed to the caller's thread by `collect`
            self._error = exc
        finally:
            written.set()

    def _first(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._stream

    def collect(self, on_text: TextSink) -> ModelReply:
        return read_reply(
            self._wire, self._build, self._request, self._first, self._deadline, on_text
        )

    def cancel(self) -> None:
        # A thread still waiting for the server is left to the process's end (it is a daemon);
        # an opened stream is closed so its connection goes back.
        if not self._thread.is_alive() and self._stream is not None:
            self._stream.close()


# -- what the loop sees of any adapter ------------------------------------------------------


class PendingReply(Protocol):
    """A request on its way to the model; the reply is read by `collect`."""

    def collect(self, on_text: TextSink) -> ModelReply:
        """The complete reply (retried as the client retries), text passed on as it arrives."""
        ...

    def cancel(self) -> None:
        """The reply will not be read: let the connection go."""
        ...


class ModelClient(Protocol):
    name: str
    format: str  # of the Prepared conversations it makes and reads

    def prepare(self, messages: Sequence[Message]) -> Prepared:
        """The conversation as this client would send it, for the store to keep ready."""
        ...

    def send(
        self,
        messages: Sequence[Message] | Prepared,
        tools: Sequence[ToolSpec],
        max_tokens: int | None = None,
        refused: Sequence[str] = (),
    ) -> PendingReply:
        """Send one request and return while the model works on it, so the caller can do its
        own work (count tokens, commit a checkpoint) meanwhile. `messages` may be a conversation
        kept ready, of this client's format. `max_tokens` bounds the reply
        (the budget's reply reserve); `refused`: fields the server refused earlier in the
        session (ModelReply.refused), not to be sent."""
        ...


class ContextTooLongError(ModelError):
    """The server refused the request as longer than the model's window."""

    def __init__(self, message: str, window: int | None) -> None:
        super().__init__(message)
        self.window = window  # the server's figure, when its message gives one
