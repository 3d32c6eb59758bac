"""The scripted model: an OpenAI-compatible Chat Completions server on 127.0.0.1 replaying a script.

Demos and tests talk to it through the real `openai` client (HTTP, SSE streaming, tool-call
deltas, usage). The reply is chosen from the conversation it is sent — the number of assistant
turns in it, counting those a compaction note stands for — never from a counter of its own, so a
resumed or rolled-back session gets the reply that belongs at that point. `{{last_input}}` in a
scripted text or argument is replaced by the newest user or tool message, so a branch taken with
other input reads differently. A request to condense a conversation (agentctl's summarizer
prompt) gets a short extractive summary. Faults (HTTP errors, malformed replies) can be queued for
tests; it fails loudly when the script runs out.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agentctl.domain.session import ScriptTurn
from agentctl.domain.toolspec import ToolSpec
from agentctl.errors import ModelError, TaskFileError
from agentctl.loop import prompts

if TYPE_CHECKING:
    from agentctl.domain.session import Message, Prepared
    from agentctl.llm.client import ModelClient, PendingReply
    from agentctl.llm.replies import ModelReply, TextSink

Json = dict[str, Any]


NO_REPLY = "the scripted model has no reply for turn"  # the 400 a script that ran out answers


class ScriptedClient:
    """The model client of a task's script: a script that ran out is said in one line, with
    what to add (not a server's 400 and a resume that would meet it again)."""

    def __init__(self, inner: ModelClient, source: str | None, turns: int) -> None:
        self._inner = inner
        self._source = source or "the task file"
        self._turns = turns
        self.name = inner.name
        self.format = inner.format
        self.prepare = inner.prepare

    def send(
        self,
        messages: Sequence[Message] | Prepared,
        tools: Sequence[ToolSpec],
        max_tokens: int | None = None,
        refused: Sequence[str] = (),
    ) -> PendingReply:
        return _ScriptedPending(self._inner.send(messages, tools, max_tokens, refused), self)

    def ran_out(self, message: str) -> TaskFileError:
        asked = message.rpartition(NO_REPLY)[2].strip().partition(":")[0]
        replies = f"{self._turns} repl{'y' if self._turns == 1 else 'ies'}"
        return TaskFileError(
            f"the task's script ran out: the model was asked for reply {asked} and "
            f"{self._source} has {replies}; add a [[script]] entry for each reply still to "
            "come, then resume the session"
        )


class _ScriptedPending:
    def __init__(self, inner: PendingReply, client: ScriptedClient) -> None:
        self._inner = inner
        self._client = client

    def collect(self, on_text: TextSink) -> ModelReply:
        try:
            return self._inner.collect(on_text)
        except ModelError as exc:
            if NO_REPLY in exc.message:
                raise self._client.ran_out(exc.message) from None
            raise

    def cancel(self) -> None:
        self._inner.cancel()


@dataclass
class Fault:
    """One injected failure, served instead of the next reply `times` times."""

    status: int = 500
    times: int = 1
    retry_after: float | None = None
    hang: float = 0.0  # seconds to wait before answering (a slow server / timeout)
    message: str | None = None  # the error text (default: "injected fault STATUS")
    # "status": answer `status` with an error body; "cut": stream part of the reply, then close
    # cleanly without a finish reason; "garbage": a chunk that is not JSON; "html": a web page
    # with `status` (a proxy's sign-in page: 200; its error page: 502); "empty": a stream with
    # nothing in it but its end (a gateway whose upstream said nothing)
    mode: Literal["status", "cut", "garbage", "html", "empty"] = "status"
    # The error body as it is, instead of OpenAI's {"error": {...}}: Gemini's list of errors,
    # FastAPI's {"detail": [...]} (llama-cpp-python)
    body: Json | list[Any] | None = None


@dataclass
class ScriptedModel:
    """The script and what the server has seen; shared by the handler threads."""

    turns: Sequence[ScriptTurn]
    delay: float = 0.0  # added to every reply (AGENTCTL_SCRIPTED_DELAY)
    request_log: Path | None = None  # a line per request, kept across processes for tests
    faults: list[Fault] = field(default_factory=list)
    requests: Counter[int] = field(default_factory=Counter)  # turn index -> requests seen
    summaries: int = 0  # requests to condense a conversation
    omit_call_ids: bool = False  # behave like servers that send tool calls without ids
    repeat_names: bool = False  # like llama-cpp-python: the tool name in every delta
    kept: list[Json] | None = None  # a list to keep every request body in, for tests
    kept_headers: list[dict[str, str]] | None = None  # and every request's headers
    # Like a small local server: it counts tokens its own way (usage_scale times the default
    # estimate), refuses a prompt over `window` tokens, may ramble when asked to summarize,
    # and may not report usage at all.
    usage_scale: float = 1.0
    # A tokenizer that counts the tool schemas (JSON) at another rate than the messages' text,
    # as SmolLM2's does against cl100k_base (1.0x on schemas, 1.14-1.18x on English): the
    # schemas at tools_scale, the messages at usage_scale.
    tools_scale: float | None = None
    window: int | None = None
    summary_text: str | None = None
    report_usage: bool = True
    # Third-party shapes (issue 31), each named by the server it imitates:
    # - call_index "none": tool-call deltas carry no `index` (Gemini's OpenAI endpoint);
    #   "zero": every call at index 0 (Gemini behind gateways such as new-api, LiteLLM).
    call_index: Literal["each", "none", "zero"] = "each"
    # Gemini 3: every tool call carries `extra_content.google.thought_signature`, and a request
    # whose earlier calls lost theirs is refused (400, in Gemini's list-of-errors form).
    thought_signatures: bool = False
    # llama-server running a chat template that needs alternating roles and takes no tool role
    # (Gemma's): after the system prompt, user and assistant take turns, a tool result counting
    # as the user's (llama-server's templating sends it so), else 400 "Conversation roles must
    # alternate".
    strict_roles: bool = False
    # Request fields a server refuses, with the code it refuses them with: a gateway that does
    # not know `stream_options` ("unknown_parameter"), Azure OpenAI's v1 endpoint refusing
    # `max_tokens` for a reasoning model ("unsupported_parameter").
    refuse_fields: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> None:
        """A request's body has been read, not yet parsed (the time-to-first-request
        benchmark's clock)."""

    def seen(self, request: Json, index: int, asks_summary: bool) -> None:
        """Count a request (and keep or log it, when asked)."""
        with self.lock:
            if self.kept is not None:
                self.kept.append(request)
            if asks_summary:
                self.summaries += 1
            else:
                self.requests[index] += 1
            if self.request_log is not None:
                with self.request_log.open("a") as log:
                    log.write("summary\n" if asks_summary else f"{index}\n")

    def over_window(self, request: Json) -> str | None:
        """A small local server's refusal of a prompt longer than its window."""
        counted = prompt_tokens(request, self.usage_scale, self.tools_scale)
        if self.window is None or counted <= self.window:
            return None
        return (
            f"This model's maximum context length is {self.window} tokens. However, your "
            f"messages resulted in {counted} tokens."
        )

    def take_fault(self) -> Fault | None:
        with self.lock:
            if not self.faults:
                return None
            fault = self.faults[0]
            fault.times -= 1
            if fault.times <= 0:
                self.faults.pop(0)
            return fault


def turn_index(messages: list[Json]) -> int:
    """Which scripted reply belongs after this conversation: one per assistant turn in it, and
    those a compaction note says it replaced."""
    return sum(
        1
        if m.get("role") == "assistant"
        else prompts.compacted_replies(m.get("content") if m.get("role") == "user" else None)
        for m in messages
    )


def summarize(messages: list[Json]) -> str:
    """The scripted model's answer to a request to condense a conversation: the opening words
    of each line of the last user message. Deterministic, so tests can predict it, and short,
    as a real summary is."""
    lines = last_input(messages).splitlines()
    gist = [" ".join(line.split()[:10]) for line in lines if ":" in line[:12]]
    return ("Scripted summary: " + "; ".join(gist))[:600]


def last_input(messages: list[Json]) -> str:
    for m in reversed(messages):
        if m.get("role") in ("user", "tool") and isinstance(m.get("content"), str):
            return str(m["content"])
    return ""


def render_turn(turn: ScriptTurn, index: int, messages: list[Json]) -> Json:
    """The assistant message of a scripted turn, with deterministic tool-call ids."""
    said = last_input(messages)

    def fill(text: str) -> str:
        return text.replace("{{last_input}}", said)

    def fill_json(args: str) -> str:
        # Inside JSON the answer is a string's content: escaped, so a `"` cannot break it.
        return args.replace("{{last_input}}", json.dumps(said)[1:-1])

    calls = []
    for n, call in enumerate(turn.tool_calls):
        args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        calls.append(
            {
                "id": f"call_{index}_{n}",
                "type": "function",
                "function": {"name": call.name, "arguments": fill_json(args)},
            }
        )
    message: Json = {"role": "assistant", "content": fill(turn.content) if turn.content else None}
    if turn.refusal:
        message["refusal"] = fill(turn.refusal)
    if calls:
        message["tool_calls"] = calls
    return message


def _approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def prompt_tokens(request: Json, scale: float = 1.0, tools_scale: float | None = None) -> int:
    """The scripted model's own count of a request: messages and tool schemas."""
    messages = json.dumps(request.get("messages"))
    tools = json.dumps(request.get("tools") or [])
    if tools_scale is None:
        return int(_approx_tokens(messages + tools) * scale)
    return int(_approx_tokens(messages) * scale + _approx_tokens(tools) * tools_scale)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # stay quiet: the terminal belongs to agentctl's own output

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._error(404, f"no route {self.path}")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.model.received()
        if self.server.model.kept_headers is not None:
            with self.server.model.lock:
                self.server.model.kept_headers.append(dict(self.headers))
        try:
            request = json.loads(body)
            messages = request["messages"]
        except (ValueError, KeyError):
            self._error(400, "request body is not a chat completion request")
            return
        model = self.server.model
        index = turn_index(messages)
        asks_summary = bool(messages) and messages[0].get("content") == prompts.SUMMARIZER
        model.seen(request, index, asks_summary)
        refused = next((f for f in model.refuse_fields if f in request), None)
        if refused is not None:
            self._refuse_field(refused, model.refuse_fields[refused])
            return
        if model.thought_signatures and (unsigned := unsigned_call(messages)) is not None:
            self._json(400, [{"error": {"code": 400, "message": unsigned, "status": "INVALID"}}])
            return
        problem = (
            request_problem(request)
            or (roles_problem(messages) if model.strict_roles else None)
            or model.over_window(request)
        )
        if problem is not None:
            self._error(400, problem)
            return
        fault = model.take_fault()
        if fault is not None and fault.mode == "status":
            time.sleep(fault.hang)
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after else {}
            if fault.body is not None:
                self._json(fault.status, fault.body, headers)
            else:
                message = fault.message or f"injected fault {fault.status}"
                self._error(fault.status, message, headers)
            return
        if fault is not None and fault.mode == "html":
            self._page(fault.status)
            return
        if asks_summary:
            time.sleep(model.delay)
            text = model.summary_text or summarize(messages)
            self._reply(request, {"role": "assistant", "content": text}, index)
            return
        if index >= len(model.turns):
            self._error(
                400,
                f"{NO_REPLY} {index + 1}: its script has {len(model.turns)} turns",
            )
            return
        turn = model.turns[index]
        time.sleep(model.delay + turn.delay)
        reply = render_turn(turn, index, messages)
        if model.omit_call_ids:
            for call in reply.get("tool_calls", []):
                call["id"] = None
        self._reply(request, reply, index, turn.stream_delay, turn.finish_reason, fault)

    def _reply(
        self,
        request: Json,
        reply: Json,
        index: int,
        pause: float = 0.0,
        finish_reason: str | None = None,
        fault: Fault | None = None,
    ) -> None:
        model = self.server.model
        prompt = prompt_tokens(request, model.usage_scale, model.tools_scale)
        completion_tokens = _approx_tokens(json.dumps(reply))
        usage: Json | None = {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        }
        if not model.report_usage:
            usage = None
        finish = finish_reason or ("tool_calls" if reply.get("tool_calls") else "stop")
        if request.get("stream"):
            include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
            chunks = list(_chunks(reply, finish, usage if include_usage else None, model))
            self._stream(chunks, pause, fault)
        else:
            self._json(
                200,
                {
                    "id": f"chatcmpl-scripted-{index}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": request.get("model", "scripted"),
                    "choices": [{"index": 0, "message": reply, "finish_reason": finish}],
                    "usage": usage,
                },
            )

    def _stream(self, chunks: list[Json], pause: float, fault: Fault | None) -> None:
        # The client may give up (a timeout): there is nothing to say to it then.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._send_stream(chunks, pause, fault)

    def _send_stream(self, chunks: list[Json], pause: float, fault: Fault | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if fault is not None and fault.mode == "empty":
            chunks = []
        if fault is not None and fault.mode == "cut":
            # Half the reply, then a clean end of the stream: no finish reason, no [DONE].
            chunks = [c for c in chunks[: max(1, len(chunks) // 2)] if c.get("choices")]
            for c in chunks:
                for choice in c["choices"]:
                    choice["finish_reason"] = None
        for n, chunk in enumerate(chunks):
            if fault is not None and fault.mode == "garbage" and n == 1:
                self.wfile.write(b'data: {"choices": [{"delta": {"content": "oops"\n\n')
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            time.sleep(pause)
        if fault is None or fault.mode != "cut":
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def _refuse_field(self, name: str, code: str) -> None:
        if code == "unsupported_parameter":  # Azure OpenAI's words
            message = f"Unsupported parameter: '{name}' is not supported with this model."
            if name == "max_tokens":
                message += " Use 'max_completion_tokens' instead."
        else:
            message = f"Unrecognized request argument supplied: {name}"
        error = {"message": message, "type": "invalid_request_error", "param": name, "code": code}
        self._json(400, {"error": error})

    def _page(self, status: int) -> None:
        data = (
            b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\n"
            b"<body><form action='/login'><input name='user'></form></body></html>\n"
        )
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(
        self, status: int, body: Json | list[Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        error_type = "rate_limit_error" if status == 429 else "invalid_request_error"
        error = {"message": message, "type": error_type, "code": None}
        self._json(status, {"error": error}, headers)


def request_problem(request: Json) -> str | None:
    """What the strictest OpenAI-compatible servers refuse, so tests meet it here: an assistant
    turn with null content (llama-cpp-python), an empty one without tool calls (vLLM, sglang),
    tool-call arguments that do not parse (vLLM parses every earlier turn's)."""
    for n, m in enumerate(request.get("messages") or []):
        if m.get("role") != "assistant":
            continue
        if m.get("content") is None:
            return f"messages[{n}]: assistant content must be a string, not null"
        if not m.get("tool_calls") and not str(m["content"]).strip():
            return f"messages[{n}]: assistant message must have content or tool_calls"
        for k, call in enumerate(m.get("tool_calls") or []):
            try:
                json.loads(call["function"]["arguments"])
            except (ValueError, KeyError, TypeError):
                return f"messages[{n}]: tool call arguments are not valid JSON"
            if not call["function"].get("name"):  # OpenAI's and Azure's words
                return (
                    f"Invalid 'messages[{n}].tool_calls[{k}].function.name': empty string. "
                    "Expected a string with minimum length 1, but got an empty string instead."
                )
    return None


def roles_problem(messages: list[Json]) -> str | None:
    """A strict chat template's refusal, as llama-server gives it for Gemma's: system messages
    first, then user and assistant in turn. That template takes no tool role, so llama-server's
    templating (minja) sends each tool result as a user message: it counts as the user's turn."""
    roles = ["user" if m.get("role") == "tool" else str(m.get("role")) for m in messages]
    start = next((n for n, r in enumerate(roles) if r != "system"), len(roles))
    if "system" in roles[start:]:
        return "System message must be at the beginning."
    for n, role in enumerate(roles[start:]):
        if role != ("user" if n % 2 == 0 else "assistant"):
            return "Conversation roles must alternate user/assistant/user/assistant/..."
    return None


def unsigned_call(messages: list[Json]) -> str | None:
    """Gemini 3's refusal of a conversation whose function calls lost their signatures."""
    for n, m in enumerate(messages):
        for call in m.get("tool_calls") or [] if m.get("role") == "assistant" else []:
            extra = call.get("extra_content") or {}
            if not (extra.get("google") or {}).get("thought_signature"):
                name = (call.get("function") or {}).get("name")
                return (
                    "Function call is missing a thought_signature in functionCall parts. This "
                    "is required for tools to work correctly, and missing thought_signature "
                    f"may lead to degraded model performance. Additional data, function call "
                    f"`default_api:{name}` , position {n + 1}. Please refer to "
                    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                )
    return None


def _chunks(
    reply: Json, finish: str, usage: Json | None, shape: ScriptedModel | None = None
) -> Iterator[Json]:
    """The reply as a client would receive it from a streaming server: small deltas, shaped as
    the server `shape` imitates (names repeated, indexes missing or all 0, signatures)."""
    repeat_names = shape is not None and shape.repeat_names
    call_index = shape.call_index if shape is not None else "each"
    signed = shape is not None and shape.thought_signatures

    def index(n: int) -> Json:
        return {} if call_index == "none" else {"index": 0 if call_index == "zero" else n}

    base = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0}
    base["model"] = "scripted"

    def chunk(delta: Json, finish_reason: str | None = None) -> Json:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    yield chunk({"role": "assistant", "content": ""})
    text = reply.get("content") or ""
    for start in range(0, len(text), 12):
        yield chunk({"content": text[start : start + 12]})
    refusal = reply.get("refusal") or ""
    for start in range(0, len(refusal), 12):
        yield chunk({"refusal": refusal[start : start + 12]})
    for n, call in enumerate(reply.get("tool_calls", [])):
        fn = call["function"]
        head = {**index(n), "type": "function"} | ({"id": call["id"]} if call["id"] else {})
        if signed:
            head["extra_content"] = {"google": {"thought_signature": f"c2lnLXtu{n}fQ=="}}
        yield chunk({"tool_calls": [{**head, "function": {"name": fn["name"], "arguments": ""}}]})
        args = fn["arguments"]
        for start in range(0, len(args), 16):
            function = {"arguments": args[start : start + 16]}
            if repeat_names:
                function["name"] = fn["name"]
            piece = {**index(n), "function": function}
            yield chunk({"tool_calls": [piece]})
    yield chunk({}, finish)
    if usage is not None:
        yield {**base, "choices": [], "usage": usage}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    model: ScriptedModel

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-reply (a killed run, a timeout) is not an error of the
        server's: no traceback on stderr. Anything else is reported as usual."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ScriptedServer:
    """A running scripted model; use as a context manager. `base_url` goes to the openai client."""

    def __init__(self, model: ScriptedModel) -> None:
        self.model = model
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.model = model
        # A short poll interval: shutdown() waits for it, and tests start many servers.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
