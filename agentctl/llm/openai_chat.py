"""The model adapter: Chat Completions with tools over the official `openai` client.

The only module that imports openai, and only when a client is built: the import costs about
0.3 s, which commands that do not call a model must not pay. A call is `send` then `collect`:
`send` returns once the request is out (a thread sends it), so the caller counts tokens and
commits while the model thinks; `collect` reads the reply on the caller's thread. Replies are
streamed (text is passed on as it arrives) and returned only once complete — a finish reason
arrived — so a checkpoint never holds half a reply; anything else that goes wrong while a reply
is read is a ModelError (exit 5, resumable). `timeout` bounds each whole reply, not each read.
The request in flight and the retry policy are llm/client.py's, shared by every adapter; this
one says what is worth a retry: 429, 5xx and refused connections; a timeout is not, since a
server that did not answer in `timeout` seconds will rarely answer in the next. A request field
the server refuses (REFUSABLE: gateways, Azure) is left out or replaced, and the request sent
again at once. Error texts never contain the API key or a URL's credentials, and say what the
server meant: its `message`, or the line that names the cause (replies.py reads replies and
refusals). The conversation is neutral (state.Message) everywhere else: its Chat Completions
form is built here and nowhere else.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from operator import is_
from typing import Any

from agentctl.config import DEFAULT_RETRIES, DEFAULT_TIMEOUT
from agentctl.domain.session import (
    Message,
    Prepared,
    sendable_arguments,
    sendable_name,
    sent_content,
)
from agentctl.domain.toolspec import ToolSpec
from agentctl.errors import ModelError
from agentctl.llm.catalogue import REASONING_MODELS, output_limit_field
from agentctl.llm.chat_form import wire_tools
from agentctl.llm.client import (
    MAX_RETRY_AFTER_S,
    RETRY_STATUS,
    InFlight,
    Pace,
    PendingReply,
    Refused,
    Retry,
)

# What the loop sees of any adapter is llm/client.py's; still importable from here.
from agentctl.llm.client import ContextTooLongError as ContextTooLongError
from agentctl.llm.client import ModelClient as ModelClient
from agentctl.llm.replies import (
    ALTERNATING,
    REFUSABLE,
    WEB_PAGE,
    ModelReply,
    TextSink,
    collect,
    context_exceeded,
    error_message,
    is_web_page,
    refused_field,
    retry_after,
    window_in,
)


def preload_client() -> None:
    """Import the SDK now (in a run whose MCP servers are starting: the two overlap)."""
    import openai  # noqa: F401


def _json(value: Any) -> str:
    # As the openai SDK serialises a request body (and httpx a JSON one).
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# -- the wire form: the conversation as Chat Completions takes it ----------------------------

Json = dict[str, Any]


def wire_call(call_id: str, name: str, arguments: str, provider_data: Json | None) -> Json:
    """A tool call as the API takes it back: a name it accepts (a placeholder for an empty or
    malformed one: the tool error that answered the call tells the model) and arguments that
    parse (vLLM parses every earlier turn's); the store keeps what came. What the server
    attached to it (provider data) goes back unchanged."""
    return {
        **(provider_data or {}),
        "id": call_id,
        "type": "function",
        "function": {"name": sendable_name(name), "arguments": sendable_arguments(arguments)},
    }


def wire_message(message: Message) -> Json:
    """The Chat Completions form of a message, as every OpenAI-compatible server takes it: an
    assistant turn always has content (state.sent_content)."""
    out: Json = {"role": message.role, "content": sent_content(message)}
    if message.tool_calls:
        out["tool_calls"] = [
            wire_call(c.id, c.name, c.arguments, c.provider_data) for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


class _Encoder:
    """The request's messages as JSON text, built incrementally: a conversation only grows
    from one request to the next (messages are values, shared by the sessions that hold
    them), so what the last request sent is kept per message group and only the messages
    after the common prefix (by identity) are encoded, with the last group before them, which
    a new message may merge into (wire_messages). Equal, byte for byte, to encoding the whole."""

    def __init__(self) -> None:
        self._messages: tuple[Message, ...] = ()
        self._wire: list[Json] = []  # wire_message of each message
        self._starts: list[int] = []  # where each group of merged messages starts
        self._texts: list[str] = []  # each group's JSON text

    def array(self, messages: Sequence[Message]) -> str:
        old, same, limit = self._messages, 0, min(len(self._messages), len(messages))
        # The usual growth: by identity, in C (not ==: an equal message may encode otherwise,
        # its provider_data's keys in another order, or 1.0 where it had 1).
        if all(map(is_, messages[:limit], old[:limit])):
            same = limit
        while same < limit and old[same] is messages[same]:
            same += 1
        groups = len(self._starts)
        while groups and self._starts[groups - 1] >= same:
            groups -= 1
        if groups:
            groups -= 1  # the group the next message may join
        start = self._starts[groups] if groups else 0
        wire = self._wire[:same] + [wire_message(m) for m in messages[same:]]
        starts, texts = self._starts[:groups], self._texts[:groups]
        merged: Json | None = None
        for index in range(start, len(messages)):
            message = wire[index]
            if merged is not None and _merges(merged, message):
                merged = {**message, "content": merged["content"] + "\n\n" + message["content"]}
                texts[-1] = _json(merged)
            else:
                merged = message
                starts.append(index)
                texts.append(_json(message))
        self._messages, self._wire, self._starts, self._texts = (
            tuple(messages),
            wire,
            starts,
            texts,
        )
        return "[" + ",".join(texts) + "]"


def wire_messages(messages: Sequence[Json]) -> list[Json]:
    """The conversation as strict chat templates take it (Gemma's, Mistral's: llama-server
    refuses anything else with "Conversation roles must alternate"): adjacent user texts
    merged into one message (after a compaction the goal, its note and a nudge stand in a
    row), and adjacent assistant texts likewise, so user and assistant take turns. Every
    server takes this form; only what is sent changes, the store keeps its own."""
    out: list[Json] = []
    for message in messages:
        previous = out[-1] if out else None
        if previous is not None and _merges(previous, message):
            out[-1] = {**message, "content": previous["content"] + "\n\n" + message["content"]}
        else:
            out.append(message)
    return out


def _merges(previous: Json, message: Json) -> bool:
    role = message.get("role")
    return (
        previous.get("role") == role
        and role in ("user", "assistant")
        and isinstance(previous.get("content"), str)
        and isinstance(message.get("content"), str)
        and not previous.get("tool_calls")
    )


def alternating(messages: Sequence[Json]) -> list[Json]:
    """The conversation for a chat template that takes no tool role (Gemma's): llama-server's
    templating sends each tool result to it as a user message, so two results in a row, or a
    result and a user's text, are two user turns in a row, which it refuses ("Conversation
    roles must alternate"). Here each result is the user's text, written as that templating
    writes it, and merged with its neighbours (wire_messages). Sent only to a server that
    refused the usual form: other servers want a tool message per call."""
    out: list[Json] = []
    for message in messages:
        if message.get("role") == "tool":
            result = {
                "tool_call_id": message.get("tool_call_id"),
                "content": message.get("content"),
            }
            text = json.dumps({"tool_response": result}, ensure_ascii=False, indent=2)
            message = {"role": "user", "content": text}
        out.append(message)
    return wire_messages(out)


# What this adapter's Prepared conversations are (state.Prepared): the JSON array of
# wire_conversation, serialised as the SDK serialises. Another format is not read.
FORMAT = "openai-chat/1"


def wire_conversation(messages: Sequence[Message] | Prepared) -> list[Json]:
    """The request's messages (wire_messages) of a conversation, or of one kept ready."""
    if isinstance(messages, Prepared):
        return list(json.loads(messages.text))
    return wire_messages([wire_message(m) for m in messages])


def prepare(messages: Sequence[Message]) -> Prepared:
    """The conversation as a request sends it, kept ready for the next resume (store/ready.py)."""
    return Prepared(FORMAT, _array(messages))


_string = json.encoder.encode_basestring  # a string as _json writes it (ensure_ascii=False)
_MERGING = ("user", "assistant")  # the roles whose adjacent texts merge (_merges)


def _array(messages: Sequence[Message]) -> str:
    """_json(wire_conversation(messages)), byte for byte (tests/test_wire.py), written without
    a dict per message: a message that is role and text (and the call it answers) is written
    as its text, merged with its neighbours as wire_messages merges them; any other (tool
    calls, no text) through wire_message. The end of a run keeps the conversation ready this
    way: at 100,000 messages the dicts and their encoding were 0.15 s, a third of it."""
    texts: list[str] = []
    group: tuple[str, str, str | None] | None = None  # the newest text, still open to a merge
    for m in messages:
        content = sent_content(m)
        if not m.tool_calls and type(content) is str:
            if group is not None and group[0] == m.role and m.role in _MERGING:
                group = (m.role, group[1] + "\n\n" + content, m.tool_call_id)
            else:
                if group is not None:
                    texts.append(_text(*group))
                group = (m.role, content, m.tool_call_id)
            continue
        wire = wire_message(m)
        if group is not None:
            role, text, call_id = group
            before: Json = {"role": role, "content": text}
            if call_id is not None:
                before["tool_call_id"] = call_id
            if _merges(before, wire):
                wire = {**wire, "content": text + "\n\n" + wire["content"]}
            else:
                texts.append(_text(*group))
            group = None
        texts.append(_json(wire))
    if group is not None:
        texts.append(_text(*group))
    if len(texts) < 2:
        return "[" + "".join(texts) + "]"
    texts[0], texts[-1] = "[" + texts[0], texts[-1] + "]"  # not a copy of the whole to add them
    return ",".join(texts)


def _text(role: str, content: str, call_id: str | None) -> str:
    """_json(wire_message(m)) of a message of text without tool calls."""
    text = '{"role":' + _string(role) + ',"content":' + _string(content)
    return text + ("}" if call_id is None else ',"tool_call_id":' + _string(call_id) + "}")


@dataclass(frozen=True)
class ModelConfig:
    model: str
    base_url: str | None
    api_key: str | None
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_RETRIES


class OpenAIModelClient:
    def __init__(
        self,
        config: ModelConfig,
        notify: Callable[[str], None] = lambda _text: None,
        sleep: Callable[[float], None] = time.sleep,  # between retries (tests watch it)
        pace: Pace | None = None,
    ) -> None:
        import openai

        from agentctl.config import redact_url

        if not config.api_key and not config.base_url:
            raise ModelError(
                "no model is configured: set OPENAI_API_KEY (or OPENAI_BASE_URL for a local "
                "server) and a model with --model or AGENTCTL_MODEL"
            )
        self.name = config.model
        self.format = FORMAT
        self._config = config
        self._secret = config.api_key or ""
        self._openai = openai
        self.notify = notify
        self.sleep = sleep
        self.pace = pace
        self._written: threading.Event | None = None  # set when the request in flight is out
        http = openai.DefaultHttpxClient(
            event_hooks={"request": [self._on_request]}, **_tls(config.base_url)
        )
        self._client = openai.OpenAI(
            # Local servers (Ollama, vLLM, LM Studio) ignore the key, but the SDK insists on one.
            api_key=config.api_key or "not-needed",
            base_url=config.base_url,
            timeout=config.timeout,
            max_retries=0,  # ours: see the module docstring
            http_client=http,
        )
        # Shown in errors and stored on error checkpoints: never with credentials in it.
        self._where = redact_url(config.base_url) if config.base_url else "the OpenAI API"
        self._limit_field = output_limit_field(config.base_url, config.model)
        self._refused: set[str] = set()  # fields the server refused (REFUSABLE)
        self._encoder = _Encoder()  # the last request's messages, encoded

    def send(
        self,
        messages: Sequence[Message] | Prepared,
        tools: Sequence[ToolSpec],
        max_tokens: int | None = None,
        refused: Sequence[str] = (),
    ) -> PendingReply:
        self._refused.update(f for f in refused if f in REFUSABLE)
        if self.pace is not None:
            self.pace.before_request()
        return InFlight(self, lambda: self._request(messages, tools, max_tokens))

    def prepare(self, messages: Sequence[Message]) -> Prepared:
        """As `prepare`, from what the requests of this run already encoded: at the end of a
        run only the messages after its last request are encoded (the same bytes: the
        encoder's)."""
        return Prepared(FORMAT, self._encoder.array(messages))

    def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        on_text: TextSink,
        max_tokens: int | None = None,
    ) -> ModelReply:
        return self.send(messages, tools, max_tokens).collect(on_text)

    def _request(
        self,
        messages: Sequence[Message] | Prepared,
        tools: Sequence[ToolSpec],
        max_tokens: int | None,
    ) -> bytes:
        """The request body. Built here, not by `chat.completions.create`: the SDK would walk
        every message through its TypedDict transform (1.3 s for 10,000 messages) and
        serialise them again. Serialised as the SDK serialises."""
        # An empty `tools` list is an error to the OpenAI API, and some servers
        # (llama-cpp-python) ignore `tools` without `tool_choice`.
        fields: dict[str, Any] = {"model": self.name, "stream": True}
        if "stream_options" not in self._refused:  # else the server reports no usage
            fields["stream_options"] = {"include_usage": True}
        if tools:
            fields.update(tools=wire_tools(tools), tool_choice="auto")
        limit_field = self._output_field()
        if max_tokens is not None and limit_field is not None:
            fields[limit_field] = max_tokens
        if ALTERNATING in self._refused:  # a strict template refused the usual form
            array = _json(alternating(wire_conversation(messages)))
        elif isinstance(messages, Prepared):
            array = messages.text  # kept ready: sent as it is
        else:
            array = self._encoder.array(messages)
        try:
            return (_json(fields)[:-1] + ',"messages":' + array + "}").encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no server could read it
            raise ModelError(
                "the request holds text that is not valid Unicode (a lone surrogate); "
                "nothing was sent"
            ) from None

    def _output_field(self) -> str | None:
        field = self._limit_field
        if field in self._refused:
            field = REFUSABLE[field]
        return None if field in self._refused else field

    # -- client.Wire: what the shared retry and in-flight machinery calls --------------

    @property
    def timeout(self) -> float:
        return self._config.timeout

    @property
    def max_retries(self) -> int:
        return self._config.max_retries

    def adapt(self, refused: Refused) -> None:
        """Leave out (or replace) a field the server refused, for the rest of the session;
        said once."""
        field = refused.field
        self._refused.add(field)
        instead = REFUSABLE[field]
        if field == ALTERNATING:
            self.notify(
                f"{self._where} refused roles that do not alternate (a strict chat template); "
                "sending tool results as the user's text from now on in this session"
            )
            return
        now = f"sending {instead} instead" if instead and instead not in self._refused else None
        self.notify(
            f"{self._where} refused the request field `{field}`; "
            f"{now or 'sending the request without it'} from now on in this session"
        )

    def _on_request(self, _request: Any) -> None:
        written = self._written
        if written is not None:
            written.set()

    def open(self, request: bytes, written: threading.Event | None = None) -> Any:
        """Send the request; the stream, once the server started answering."""
        self._written = written
        try:
            # What `chat.completions.create` does after building its body: the SDK's own
            # request, auth, error and event-stream code; the chunks are read as the JSON the
            # server sent (_chunk_stream).
            from openai.types.chat import ChatCompletion

            return self._client.post(
                "/chat/completions",
                content=request,
                cast_to=ChatCompletion,
                options={"security": {"bearer_auth": True}},
                stream=True,
                stream_cls=_chunk_stream(),
            )
        except Exception as exc:
            raise self._translated(exc, started=False) from None
        finally:
            self._written = None

    def read(self, stream: Any, on_text: TextSink, deadline: float) -> ModelReply:
        reply = self._read(stream, on_text, deadline)
        return replace(reply, refused=tuple(sorted(self._refused)))

    def _read(self, stream: Any, on_text: TextSink, deadline: float) -> ModelReply:
        started = False  # once a chunk arrived, a failure cuts the reply: it is not retried

        def on_chunk() -> None:
            nonlocal started
            started = True
            if time.monotonic() > deadline:
                raise ModelError(
                    f"{self._where} took longer than {self._config.timeout:g} s to reply "
                    "(the timeout setting bounds each reply)"
                )

        try:
            if is_web_page(getattr(stream, "response", None)):
                raise ModelError(f"{self._where} {WEB_PAGE}")
            return collect(stream, on_text, on_chunk, self._where)
        except ModelError:
            raise
        except Exception as exc:
            raise self._translated(exc, started) from None
        finally:
            stream.close()

    def _translated(self, exc: Exception, started: bool) -> Exception:
        """What an SDK failure means for the user: a ModelError (said once, exit 5), a Refused
        field, or a Retry for what is worth another attempt. `started`: part of the reply had
        arrived."""
        openai, where = self._openai, self._where
        if isinstance(exc, openai.AuthenticationError):
            return ModelError(f"{where} refused the API key (authentication failed)")
        if isinstance(exc, openai.APITimeoutError):
            if started:
                return ModelError(f"the reply from {where} was cut: it stalled")
            return ModelError(f"{where} did not answer within {self._config.timeout:g} s")
        if isinstance(exc, openai.APIConnectionError):
            if started:
                return ModelError(
                    f"the reply from {where} was cut: the connection closed mid-reply"
                )
            return Retry(f"cannot reach the model server at {where}")
        if isinstance(exc, openai.APIStatusError):
            detail = self._redact(error_message(exc))
            message = f"{where} answered {exc.status_code}: {detail}"
            if is_web_page(exc.response):
                message = f"{where} {WEB_PAGE.replace('answered', f'answered {exc.status_code}')}"
            field = refused_field(exc, detail)
            if field is not None and field not in self._refused:
                return Refused(field)
            if context_exceeded(exc.status_code, detail):
                return ContextTooLongError(message, window_in(detail))
            if exc.status_code in RETRY_STATUS:
                return Retry(message, retry_after(exc), exc.status_code)
            return ModelError(message)
        # A malformed chunk, a reply of the wrong shape.
        error_type = type(exc).__name__
        detail = self._redact(str(exc).splitlines()[0] if str(exc) else error_type)
        return ModelError(f"{where} sent a reply agentctl cannot read ({error_type}: {detail})")

    def _redact(self, text: str) -> str:
        from agentctl.redact import redact_text

        # Only a key long enough to be a secret is masked: masking "x" would mangle the text.
        if len(self._secret) >= 8:
            text = text.replace(self._secret, "***")
        return redact_text(text)


_CHUNK_STREAM: Any = None


def _chunk_stream() -> Any:
    """The SDK's event stream, yielding each chunk as the JSON object the server sent: its own
    stream builds a model of every chunk (construct_type: about 0.5 ms a chunk, most of what
    reading a reply cost), which replies.collect does not need. The SSE decoding, the error
    events and the timeouts are the SDK's, as before."""
    global _CHUNK_STREAM
    if _CHUNK_STREAM is None:
        from openai import APIError, Stream

        class ChunkStream(Stream[dict[str, Any]]):
            def __stream__(self) -> Any:
                try:
                    for sse in self._iter_events():
                        if sse.data.startswith("[DONE]"):
                            break
                        data = sse.json()
                        if isinstance(data, dict) and data.get("error"):  # as the SDK says it
                            error = data["error"]
                            message = error.get("message") if isinstance(error, dict) else None
                            if not message or not isinstance(message, str):
                                message = "An error occurred during streaming"
                            raise APIError(message, self.response.request, body=error)
                        yield data
                finally:
                    self.response.close()

        _CHUNK_STREAM = ChunkStream
    return _CHUNK_STREAM


def _tls(base_url: str | None) -> dict[str, Any]:
    """A plain-HTTP server (Ollama, vLLM, LM Studio on this machine) needs no certificate
    authorities: loading them is ~20 ms before the first request. Its context has none, so
    anything that would reach TLS (a redirect to https) fails closed instead of unverified."""
    import ssl
    from urllib.parse import urlsplit

    if base_url and urlsplit(base_url).scheme == "http":
        return {"verify": ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)}
    return {}


__all__ = [  # ModelReply and TextSink live in replies.py, the retry policy in llm/client.py
    "MAX_RETRY_AFTER_S",
    "REASONING_MODELS",
    "ContextTooLongError",
    "ModelClient",
    "ModelConfig",
    "ModelReply",
    "OpenAIModelClient",
    "Pace",
    "PendingReply",
    "TextSink",
    "output_limit_field",
    "wire_conversation",
    "wire_message",
]
