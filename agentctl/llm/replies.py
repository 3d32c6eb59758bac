"""What comes back from a Chat Completions server, read apart from the SDK that carried it: a
streamed reply assembled into one message, and what a refusal says.

The decisions here: a reply counts only once a finish reason arrived; parallel tool calls stay
apart however a server numbers them (`_Calls`), and what a server attaches to a call is kept to
be sent back; an error is one line that says what the server meant (its `message`, or the line
that names the cause), a web page where the API should answer is said as such. No openai import:
openai_chat.py hands over the SDK's objects and exceptions.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentctl.domain.session import FinishReason, Message, ToolCall, Usage
from agentctl.errors import ModelError

TextSink = Callable[[str], None]
ALTERNATING = "alternating_roles"  # REFUSABLE: the conversation as llm.alternating sends it
WEB_PAGE = "answered with a web page, not the API (a proxy or sign-in page?)"


@dataclass(frozen=True)
class ModelReply:
    message: Message  # role assistant; tokens not yet counted; finish_reason set
    usage: Usage
    # Request fields the server refused (REFUSABLE), left out or replaced since: the session
    # keeps them, so later requests, a resume's too, do not pay the refusal again.
    refused: tuple[str, ...] = ()
    cached_tokens: int = 0  # of the prompt's, served from the server's cache (where it says)

    @property
    def finish(self) -> FinishReason:
        return self.message.finish or FinishReason.OTHER


# Chat Completions' finish reasons in the loop's words; any other is FinishReason.OTHER.
FINISH_REASONS = {
    "stop": FinishReason.STOP,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,  # the API's older form of the same
    "length": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
}


# Request fields some servers refuse with a 400, and what is sent instead (None: nothing). A
# gateway that does not know `stream_options` (new-api, LiteLLM before it learned it) answers
# unknown_parameter; Azure OpenAI's v1 endpoint refuses `max_tokens` for reasoning models.
REFUSABLE: dict[str, str | None] = {
    "stream_options": None,
    "max_tokens": "max_completion_tokens",
    "max_completion_tokens": "max_tokens",
    # Not a field: the form of the messages. A strict chat template that takes no tool role
    # refuses tool results in a row ("roles must alternate"): llm.alternating is sent instead.
    ALTERNATING: None,
}


def error_message(exc: Any) -> str:
    """What the server said went wrong, on one line: its `message` field (OpenAI, vLLM, Gemini's
    list of errors, FastAPI's `detail`), and of a message of several lines the line that names
    the cause, not a heading such as "1 validation error:" (llama-cpp-python) or "Unable to
    generate parser for this template" (llama-server), nor a traceback's frames."""
    text = _message_of(getattr(exc, "body", None)) or str(getattr(exc, "message", exc))
    return cause_line(text)[:300]


def _message_of(body: Any, depth: int = 0) -> str | None:
    if depth > 3 or not body:
        return None
    if isinstance(body, str):
        return body
    if isinstance(body, list):  # Gemini: [{"error": {...}}]; FastAPI: "detail": [{...}]
        return _message_of(body[0], depth + 1)
    if not isinstance(body, dict):
        return None
    for key in ("error", "message", "detail", "msg"):
        found = _message_of(body.get(key), depth + 1)
        if found:
            loc = body.get("loc")  # FastAPI/pydantic: where in the request
            if key == "msg" and isinstance(loc, list):
                return ".".join(map(str, loc)) + ": " + found
            return found
    return None


_HEADING = re.compile(r"(:|\d+ validation errors?( for \S+)?)\s*$", re.I)
_FRAME = re.compile(r"^(File \"|at |Traceback|line \d+|\^|~)", re.I)
_CAUSE = re.compile(
    r"error|must|should|cannot|can't|not (allowed|supported|valid|found)|invalid|unknown|"
    r"unsupported|missing|expected|required|exceed|refus|denied|too (long|large|many)|cause",
    re.I,
)


def cause_line(text: str) -> str:
    """The informative part of a server's message: its first line, unless that only introduces
    what follows ("1 validation error:") or names no cause ("Unable to generate parser for this
    template"); then that line with the later one that names the cause (and the line before it
    when that says where, as pydantic's field path does). Traceback frames never count."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "no message"
    first = lines[0]
    if _CAUSE.search(first) and not _HEADING.search(first):
        return first
    later = [line for line in lines[1:] if not _FRAME.match(line)]
    at = next((n for n, line in enumerate(later) if _CAUSE.search(line)), None)
    if at is None:
        return first
    cause = later[at]
    if at > 0 and " " not in later[at - 1] and len(later[at - 1]) < 80:  # a field's path
        cause = f"{later[at - 1]}: {cause}"
    return f"{first.rstrip(':.… ')}: {cause}"


def is_web_page(response: Any) -> bool:
    """An HTML page where the API should answer: a proxy's sign-in or error page."""
    headers = getattr(response, "headers", None)
    content_type = headers.get("content-type", "") if headers is not None else ""
    return "text/html" in str(content_type).lower()


_CONTEXT_WORDS = re.compile(
    r"context[_ ]length[_ ]exceeded|maximum context length|context window|too many tokens|"
    r"exceeds the context|prompt is too long",
    re.IGNORECASE,
)
_WINDOW_FIGURE = re.compile(r"(?:maximum context length|context window) (?:is|of) (\d+)", re.I)


_ROLES = re.compile(r"roles must alternate", re.I)  # llama-server, Jinja templates' own words
_REFUSAL_WORDS = re.compile(
    r"unknown|unsupported|unrecogni[sz]ed|not supported|not permitted|not allowed|extra", re.I
)


def refused_field(exc: Any, detail: str) -> str | None:
    """The REFUSABLE field a 400 names as refused: its `param` with OpenAI's codes, or a
    refusal that names it (pydantic's "body.stream_options: Extra inputs are not permitted")."""
    if getattr(exc, "status_code", None) not in (400, 422, 500):
        return None
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        param, code = body.get("param"), body.get("code")
        if param in REFUSABLE and code in ("unknown_parameter", "unsupported_parameter"):
            return str(param)
    if _ROLES.search(detail):
        return ALTERNATING
    if _REFUSAL_WORDS.search(detail):
        named = [f for f in REFUSABLE if f != ALTERNATING and re.search(rf"\b{f}\b", detail)]
        if len(named) == 1:
            return named[0]
    return None


def context_exceeded(status: int, detail: str) -> bool:
    return status in (400, 413) and bool(_CONTEXT_WORDS.search(detail))


def window_in(detail: str) -> int | None:
    found = _WINDOW_FIGURE.search(detail)
    return int(found.group(1)) if found else None


def retry_after(exc: Any) -> float | None:
    """The server's wait in seconds (a number, or an HTTP date), uncut: the caller bounds it."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


_CALL_FIELDS = frozenset({"index", "id", "type", "function"})


class _Calls:
    """Tool calls assembled from streamed deltas. A delta belongs to the newest call at its
    `index` (servers that send none, Gemini's OpenAI endpoint, and gateways that put every
    call at 0 meet here too) unless it starts a new one: it carries an `id` other than that
    call's, a name other than that call's, or (with no id) that call's name again after its
    arguments already form a whole JSON object. The same id and name repeated in every delta
    (llama-cpp-python) stay one call. What a server attaches to a call beyond the fields of
    the API (Gemini 3's `extra_content` with its thought signature) is kept, to be sent back."""

    def __init__(self) -> None:
        self._calls: list[dict[str, Any]] = []
        self._newest: dict[int | None, int] = {}  # index -> position of its newest call

    def add(self, part: dict[str, Any]) -> None:
        key = part.get("index")
        function = part.get("function") or {}
        name = function.get("name") or ""
        arguments = function.get("arguments") or ""
        part_id = part.get("id") or ""
        at = self._newest.get(key)
        if at is None and key is None and self._calls:
            at = len(self._calls) - 1  # no index at all: the newest call
        call = self._calls[at] if at is not None else None
        if call is None or self._starts_new(call, part_id, name):
            call = {"id": "", "name": "", "arguments": "", "extra": {}}
            self._calls.append(call)
            self._newest[key] = len(self._calls) - 1
        call["id"] = call["id"] or part_id
        if name and not call["name"]:
            call["name"] = name
        call["arguments"] += arguments
        if not part.keys() <= _CALL_FIELDS:
            extra = {k: v for k, v in part.items() if k not in _CALL_FIELDS}
            call["extra"].update(extra)

    @staticmethod
    def _starts_new(call: dict[str, Any], call_id: str, name: str) -> bool:
        if call_id and call["id"]:
            return bool(call_id != call["id"])
        if name and call["name"] and name != call["name"]:
            return True
        return bool(name and call["arguments"] and _whole(call["arguments"]))

    def assembled(self) -> tuple[ToolCall, ...]:
        # A missing id stays empty: the runner gives it one that is unique in the session.
        return tuple(
            ToolCall(
                id=c["id"],
                name=c["name"],
                arguments=c["arguments"],
                provider_data=c["extra"] or None,
            )
            for c in self._calls
        )


def _whole(arguments: str) -> bool:
    try:
        return isinstance(json.loads(arguments), dict)
    except (ValueError, RecursionError):
        return False


def collect(
    stream: Any, on_text: TextSink, on_chunk: Callable[[], None], where: str = "the server"
) -> ModelReply:
    """Assemble streamed chunks (each the JSON object the server sent) into one assistant
    message (tool calls: see _Calls). A reply is complete only when a finish reason arrived.
    A chunk of another shape is a TypeError: the adapter says the reply cannot be read."""
    text: list[str] = []
    calls = _Calls()
    usage = Usage(calls=1, unreported=1)  # until the server says otherwise
    finish: str | None = None
    chunks = 0
    cached = 0
    for chunk in stream:
        chunks += 1
        on_chunk()
        if not isinstance(chunk, dict):
            raise TypeError(f"a chunk is {type(chunk).__name__}, not an object")
        reported = chunk.get("usage")
        if reported is not None:
            usage = Usage(
                calls=1,
                prompt_tokens=reported.get("prompt_tokens") or 0,
                completion_tokens=reported.get("completion_tokens") or 0,
            )
            details = reported.get("prompt_tokens_details")
            cached = (details.get("cached_tokens") if isinstance(details, dict) else None) or 0
        for choice in chunk.get("choices") or ():
            finish = choice.get("finish_reason") or finish
            delta = choice.get("delta")
            if delta is None:
                continue
            # A refusal is the model's answer too: shown and stored as its text.
            for piece in (delta.get("content"), delta.get("refusal")):
                if piece:
                    if not isinstance(piece, str):
                        raise TypeError(f"a text delta is {type(piece).__name__}")
                    text.append(piece)
                    on_text(piece)
            for part in delta.get("tool_calls") or ():
                calls.add(part)
    if finish is None and not chunks:
        raise ModelError(f"{where} sent an empty reply (a stream with nothing in it)")
    if finish is None:
        raise ModelError("the reply was cut: the server ended the stream before it was complete")
    tool_calls = calls.assembled()
    reason = FINISH_REASONS.get(finish, FinishReason.OTHER)
    message = Message(
        role="assistant", content="".join(text), tool_calls=tool_calls, finish_reason=reason.value
    )
    return ModelReply(message=message, usage=usage, cached_tokens=cached)
