"""The MCP adapter: the only module that imports the `mcp` SDK. It holds a session's servers
open on one event loop, run by whichever thread starts, calls or closes them (one at a time),
and gives the synchronous runner three things: the servers' tool listings, a call, and a
close. (Arguments are checked against a tool's schema before it is called, by tools/schema.py,
as every tool's are.)

The decisions a reader must know: servers start in parallel, each within its own start-up
timeout, and a server that does not come up is reported, never waited for past it; a stdio
server's process is started before the SDK is imported (`McpHub.spawn`: the SDK's import takes
about as long as a Python server's start, and the two overlap), so agentctl talks to its pipes
itself (`_piped`, the SDK's stdio transport's shape and shutdown); a server's stderr goes to its
own log file (0600), never to the terminal; a result's binary parts are written to files and
referenced, never put into the context as base64.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agentctl.errors import UsageError
from agentctl.mcpconfig import INSTALL, McpServer

if TYPE_CHECKING:
    from mcp import Client

# What a stdio server gets of agentctl's environment besides its own `env` and `env_vars`: the
# SDK's safe list (mcp.client.stdio's DEFAULT_INHERITED_ENV_VARS on POSIX). Never the model's key.
INHERITED = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER")
# A stdio server's shutdown, as the SDK's transport does it (the MCP lifecycle): stdin closed,
# then TERM to its process group, then KILL, each after a grace period.
EXIT_GRACE_S = 2.0
KILL_GRACE_S = 2.0
T = TypeVar("T")
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "application/pdf": ".pdf",
}


def sdk_installed() -> bool:
    """Whether the SDK can be imported, found without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec("mcp") is not None
    except (ImportError, ValueError):
        return False


def require_sdk() -> None:
    """One line with the install command where the extra is missing."""
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise UsageError(
            "this task uses MCP servers and the MCP client is not installed",
            hint=INSTALL,
        ) from None


@dataclass(frozen=True)
class RemoteTool:
    """One tool as a server listed it."""

    name: str
    description: str
    schema: dict[str, Any]
    read_only: bool | None = None  # annotations: hints, trusted only where the user says
    destructive: bool | None = None
    title: str | None = None


@dataclass
class ServerStatus:
    server: McpServer
    tools: list[RemoteTool] = field(default_factory=list)
    error: str | None = None  # why it is not up
    info: str | None = None  # "name version" the server gave
    seconds: float = 0.0  # time to come up and list its tools

    @property
    def up(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class McpResult:
    text: str
    is_error: bool
    structured: Any = None
    files: tuple[str, ...] = ()


class McpHub:
    """A session's MCP servers, held open until `close`."""

    def __init__(
        self,
        servers: list[McpServer],
        *,
        environ: Mapping[str, str],
        cwd: Path,
        logs: Path,
        files: Path,
    ) -> None:
        self.servers = servers
        self._environ = environ
        self._cwd = cwd
        self._logs = logs
        self.files = files  # where binary parts of results are written
        self.status: dict[str, ServerStatus] = {}
        self._clients: dict[str, Client] = {}
        # The servers' connections live on this loop, which runs only while a start, a call or
        # the close runs it, on the caller's own thread: a call then wakes one thread when the
        # answer comes, as the SDK called directly does, not three (a loop thread woken to send,
        # woken by the answer, then the caller woken by it: on a loaded machine each wake is a
        # wait for a core).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = threading.Lock()  # one thread runs the loop at a time
        self._stop: asyncio.Event | None = None
        self._holders: list[asyncio.Future[None]] = []
        # stdio servers started by `spawn` (or why they could not be), not yet connected
        self._spawned: dict[str, subprocess.Popen[bytes] | OSError | ValueError] = {}
        self._began: dict[str, float] = {}  # when each server's start began (monotonic)
        self._processes: list[subprocess.Popen[bytes]] = []  # every one started: see close

    # -- start and stop ------------------------------------------------------------------

    def spawn(self) -> None:
        """Start the stdio servers' processes now, without the SDK (a few milliseconds each):
        they boot while the SDK is imported; `start` connects to them."""
        for server in self.servers:
            if server.url is None and server.name not in self._spawned:
                self._began[server.name] = time.monotonic()
                try:
                    self._spawned[server.name] = self._spawn(server)
                except (OSError, ValueError) as exc:  # said where the server is started
                    self._spawned[server.name] = exc

    def _spawn(self, server: McpServer) -> subprocess.Popen[bytes]:
        env = {k: v for k in INHERITED if (v := os.environ.get(k)) and not v.startswith("()")}
        env.update({k: self._environ[k] for k in server.env_vars if k in self._environ})
        env.update(server.env)
        self._logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self._logs / f"{server.name}.log", "ab", opener=_private) as log:
            proc = subprocess.Popen(
                [server.command or "", *server.args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=server.cwd or str(self._cwd),
                env=env,
                start_new_session=True,  # its own process group: stopped whole, no Ctrl-C
            )
        self._processes.append(proc)
        return proc

    def start(self) -> dict[str, ServerStatus]:
        """Start every server at once; return when each is up or past its timeout."""
        self.spawn()
        require_sdk()
        loop = asyncio.new_event_loop()
        self._loop = loop
        longest = max((s.startup_timeout_sec for s in self.servers), default=1.0)
        self._run(loop, self._start_all(), longest + 10)
        return self.status

    def _run(
        self, loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T], limit: float
    ) -> T:
        """Run the loop on this thread until `work` is done (TimeoutError past `limit`); the
        connections' other tasks run meanwhile, and wait between runs."""
        with self._running:
            task = loop.create_task(asyncio.wait_for(work, limit))
            try:
                return loop.run_until_complete(task)
            except BaseException:  # an interrupt (Ctrl-C) while it waited: it ends at close
                if not task.done():
                    task.cancel()
                task.add_done_callback(_retrieved)
                raise

    async def _start_all(self) -> None:
        self._stop = asyncio.Event()

        async def one(server: McpServer) -> None:
            ready: asyncio.Future[list[RemoteTool]] = asyncio.get_running_loop().create_future()
            began = self._began.get(server.name, time.monotonic())
            holder = asyncio.ensure_future(self._hold(server, ready))
            self._holders.append(holder)
            status = ServerStatus(server)
            try:
                status.tools = await asyncio.wait_for(
                    asyncio.shield(ready), server.startup_timeout_sec
                )
                client = self._clients[server.name]
                given = client.server_info
                status.info = f"{given.name} {given.version}" if given else None
            except TimeoutError:
                status.error = f"did not start within {server.startup_timeout_sec:g} s"
                holder.cancel()
            except Exception as exc:
                status.error = _reason(exc)
            status.seconds = time.monotonic() - began
            self.status[server.name] = status

        await asyncio.gather(*(one(s) for s in self.servers))

    async def _hold(self, server: McpServer, ready: asyncio.Future[list[RemoteTool]]) -> None:
        """Connect, list the tools, then keep the connection until the hub closes (the SDK's
        context managers must be left in the task that entered them)."""
        from mcp import Client
        from mcp_types import Implementation

        import agentctl

        try:
            transport = self._transport(server)
            info = Implementation(name="agentctl", version=agentctl.__version__)
            async with Client(transport, client_info=info, cache=None) as client:
                self._clients[server.name] = client
                tools = await _list_tools(client)
                if not ready.done():
                    ready.set_result(tools)
                assert self._stop is not None
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            if not isinstance(exc, Exception):
                raise
        finally:
            self._clients.pop(server.name, None)

    def _transport(self, server: McpServer) -> Any:
        if server.url:
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            http = create_mcp_http_client(headers=dict(server.http_headers) or None)
            return streamable_http_client(server.url, http_client=http)
        if server.name not in self._spawned:
            self._began[server.name] = time.monotonic()
            self._spawned[server.name] = self._spawn(server)
        proc = self._spawned.pop(server.name)
        if isinstance(proc, Exception):
            raise proc
        return _piped(proc)

    def close(self) -> None:
        loop = self._loop
        if loop is None:
            self._reap()
            return
        self._loop = None

        async def stop() -> None:
            if self._stop is not None:
                self._stop.set()
            if self._holders:
                await asyncio.wait(self._holders, timeout=5)
                for h in self._holders:
                    h.cancel()
                await asyncio.wait(self._holders, timeout=1)  # the cancellations land

        # A server that will not stop is killed (_reap).
        with contextlib.suppress(Exception):
            self._run(loop, stop(), 10)
        if not any(not t.done() for t in asyncio.all_tasks(loop)):
            loop.close()  # else left for the collector: closing would not end them
        self._reap()

    def _reap(self) -> None:
        """Stop what is still running: servers spawned and never connected (the SDK missing,
        a start cut short), and any a transport left behind."""
        for proc in self._processes:
            if proc.poll() is None:
                _kill_group(proc, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=KILL_GRACE_S)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    # -- calls -----------------------------------------------------------------------------

    def call(self, server: McpServer, tool: str, arguments: dict[str, Any]) -> McpResult:
        loop, client = self._loop, self._clients.get(server.name)
        if loop is None or client is None:
            return McpResult(f"the MCP server {server.name!r} is not running", is_error=True)
        timeout = server.tool_timeout_sec
        try:
            result = self._run(
                loop, client.call_tool(tool, arguments, read_timeout_seconds=timeout), timeout + 5
            )
        except TimeoutError:
            return McpResult(f"no answer within {timeout:g} s (tool_timeout_sec)", is_error=True)
        except Exception as exc:
            return McpResult(f"the call failed: {_reason(exc)}", is_error=True)
        return self._convert(server.name, result)

    def _convert(self, server: str, result: Any) -> McpResult:
        from mcp_types import (
            AudioContent,
            BlobResourceContents,
            EmbeddedResource,
            ImageContent,
            ResourceLink,
            TextContent,
            TextResourceContents,
        )

        texts: list[str] = []
        files: list[str] = []
        for part in result.content:
            if isinstance(part, TextContent):
                texts.append(part.text)
            elif isinstance(part, ImageContent | AudioContent):
                path = self._write(server, part.data, part.mime_type)
                files.append(path)
                texts.append(f"[{part.type} {part.mime_type}, saved to {path}]")
            elif isinstance(part, EmbeddedResource):
                res = part.resource
                if isinstance(res, TextResourceContents):
                    texts.append(res.text)
                elif isinstance(res, BlobResourceContents):
                    path = self._write(server, res.blob, res.mime_type)
                    files.append(path)
                    texts.append(f"[resource {res.uri}, saved to {path}]")
            elif isinstance(part, ResourceLink):
                texts.append(f"[resource link {part.uri}: {part.name}]")
            else:
                texts.append(f"[{getattr(part, 'type', 'unknown')} content]")
        structured = result.structured_content
        text = "\n".join(texts)
        if not texts and structured is not None:
            text = json.dumps(structured, ensure_ascii=False)
        return McpResult(text, bool(result.is_error), structured, tuple(files))

    def _write(self, server: str, data: str, mime: str | None) -> str:
        """A binary part as a file named by its content, under the session's data."""
        try:
            raw = base64.b64decode(data, validate=False)
        except ValueError:
            raw = data.encode()
        suffix = _EXTENSIONS.get(mime or "", ".bin")
        self.files.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.files / f"{server}-{hashlib.sha256(raw).hexdigest()[:16]}{suffix}"
        if not path.exists():
            from agentctl.atomic import write_private

            write_private(path, raw)
        return str(path)


async def _list_tools(client: Client) -> list[RemoteTool]:
    tools: list[RemoteTool] = []
    cursor: str | None = None
    for _ in range(100):  # a paginator that never ends cannot hang the start
        page = await client.list_tools(cursor=cursor)
        for t in page.tools:
            notes = t.annotations
            tools.append(
                RemoteTool(
                    t.name,
                    t.description or "",
                    dict(t.input_schema),
                    notes.read_only_hint if notes else None,
                    notes.destructive_hint if notes else None,
                    (notes.title if notes else None) or t.title,
                )
            )
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def _reason(exc: BaseException) -> str:
    """An exception as one line (an ExceptionGroup's first leaf)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().split("\n", 1)[0] or type(exc).__name__
    from agentctl.redact import redact_text

    return redact_text(text)[:300]


def _private(path: str, flags: int) -> int:
    import os

    return os.open(path, flags, 0o600)


def _retrieved(task: asyncio.Task[Any]) -> None:
    """Its outcome is nobody's any more: taken, so asyncio does not print it at exit."""
    if not task.cancelled():
        task.exception()


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, sig)  # its own session: the server and what it started


@contextlib.asynccontextmanager
async def _piped(proc: subprocess.Popen[bytes]) -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's transport over a server process already running: one JSON-RPC message a
    line each way, parsed and dumped as the SDK's stdio transport does; on the way out stdin
    is closed, then the process group is stopped (TERM, then KILL) if it does not exit."""
    import anyio
    from mcp.shared.message import SessionMessage
    from mcp_types import jsonrpc_message_adapter

    stdin, stdout = proc.stdin, proc.stdout
    assert stdin is not None
    assert stdout is not None
    out, into = stdout.fileno(), stdin.fileno()
    os.set_blocking(out, False)
    os.set_blocking(into, False)
    received_in, received = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    sent, sent_out = anyio.create_memory_object_stream[SessionMessage](0)
    writer_done = anyio.Event()

    def parse(line: bytes) -> SessionMessage | Exception:
        try:
            return SessionMessage(jsonrpc_message_adapter.validate_json(line, by_name=False))
        except ValueError as exc:  # the session answers the request it was for
            return exc

    async def read() -> None:
        pending = bytearray()
        deliver = True
        async with received_in:
            while True:
                try:
                    chunk = os.read(out, 1 << 16)
                except BlockingIOError:
                    try:
                        await anyio.wait_readable(out)
                    except anyio.ClosedResourceError:
                        return
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                if not deliver:
                    continue  # drained, so a server flushing its output can exit
                start = len(pending)
                pending += chunk
                while (end := pending.find(b"\n", start)) >= 0:
                    line = bytes(pending[:end])
                    del pending[: end + 1]
                    start = 0
                    if not line.strip():
                        continue
                    try:
                        await received_in.send(parse(line))
                    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                        deliver = False
                        break

    async def write() -> None:
        try:
            async with sent_out:
                async for message in sent_out:
                    text = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    data = memoryview((text + "\n").encode())
                    while data:
                        try:
                            data = data[os.write(into, data) :]
                        except BlockingIOError:
                            await anyio.wait_writable(into)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await received_in.aclose()  # the session sees the end, not a request that hangs
        finally:
            writer_done.set()

    async def stop() -> None:
        received.close()
        sent.close()
        with anyio.move_on_after(0.5):  # the writer flushes what it accepted
            await writer_done.wait()
        anyio.notify_closing(into)
        with contextlib.suppress(OSError):
            stdin.close()
        for sig, grace in ((None, EXIT_GRACE_S), (signal.SIGTERM, KILL_GRACE_S)):
            if sig is not None:
                _kill_group(proc, sig)
            deadline = anyio.current_time() + grace
            while proc.poll() is None and anyio.current_time() < deadline:
                await anyio.sleep(0.01)
            if proc.returncode is not None:
                break
        else:
            _kill_group(proc, signal.SIGKILL)  # reaped by the hub's close
        anyio.notify_closing(out)
        with contextlib.suppress(OSError):
            stdout.close()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(read)
        tasks.start_soon(write)
        try:
            yield received, sent
        finally:
            with anyio.CancelScope(shield=True):  # the server must not outlive the session
                await stop()
            tasks.cancel_scope.cancel()
