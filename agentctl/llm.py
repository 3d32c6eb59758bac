"""The model adapter: Chat Completions with tools over the official `openai` client.

The only module that imports openai, and only when a client is built: the import costs about a
second, which commands that do not call a model must not pay. Replies are streamed (text is
passed on as it arrives) and returned only once complete, so a checkpoint never holds half a
reply. SDK exceptions become ModelError with a message that never contains the API key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agentctl.errors import ModelError
from agentctl.state import Message, ToolCall, Usage

TextSink = Callable[[str], None]


@dataclass(frozen=True)
class ModelReply:
    message: Message  # role assistant; tokens not yet counted
    usage: Usage


class ModelClient(Protocol):
    name: str

    def complete(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]], on_text: TextSink
    ) -> ModelReply: ...


@dataclass(frozen=True)
class ModelConfig:
    model: str
    base_url: str | None
    api_key: str | None
    timeout: float = 120.0
    max_retries: int = 3


class OpenAIModelClient:
    def __init__(self, config: ModelConfig) -> None:
        import openai

        if not config.api_key and not config.base_url:
            raise ModelError(
                "no model is configured: set OPENAI_API_KEY (or OPENAI_BASE_URL for a local "
                "server) and a model with --model or AGENTCTL_MODEL"
            )
        self.name = config.model
        self._secret = config.api_key or ""
        self._openai = openai
        self._client = openai.OpenAI(
            # Local servers (Ollama, vLLM, LM Studio) ignore the key, but the SDK insists on one.
            api_key=config.api_key or "not-needed",
            base_url=config.base_url,
            timeout=config.timeout,
            max_retries=config.max_retries,
        )
        from agentctl.config import redact_url

        # Shown in errors and stored on error checkpoints: never with credentials in it.
        self._where = redact_url(config.base_url) if config.base_url else "the OpenAI API"

    def complete(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]], on_text: TextSink
    ) -> ModelReply:
        openai = self._openai
        try:
            # Our messages and tools are plain dicts in the wire format; the SDK's TypedDicts
            # describe the same shapes.
            # An empty `tools` list is an error to the OpenAI API: leave it out instead.
            extra = {"tools": list(tools)} if tools else {}
            stream = self._client.chat.completions.create(  # type: ignore[call-overload]
                model=self.name,
                messages=list(messages),
                stream=True,
                stream_options={"include_usage": True},
                **extra,
            )
            return _collect(stream, on_text)
        except openai.AuthenticationError:
            raise ModelError(f"{self._where} refused the API key (authentication failed)") from None
        except openai.APITimeoutError:
            raise ModelError(f"{self._where} did not answer in time") from None
        except openai.APIConnectionError:
            raise ModelError(f"cannot reach the model server at {self._where}") from None
        except openai.APIStatusError as exc:
            detail = self._redact(_error_message(exc))
            raise ModelError(f"{self._where} answered {exc.status_code}: {detail}") from None
        except openai.OpenAIError as exc:
            raise ModelError(f"model call failed: {self._redact(str(exc))}") from None

    def _redact(self, text: str) -> str:
        from agentctl.config import redact_text

        # Only a key long enough to be a secret is masked: masking "x" would mangle the text.
        if len(self._secret) >= 8:
            text = text.replace(self._secret, "***")
        return redact_text(text)


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", exc))


def _collect(stream: Any, on_text: TextSink) -> ModelReply:
    """Assemble streamed chunks into one assistant message (tool-call deltas merged by index)."""
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    usage = Usage(calls=1)
    for chunk in stream:
        if chunk.usage is not None:
            usage = Usage(
                calls=1,
                prompt_tokens=chunk.usage.prompt_tokens or 0,
                completion_tokens=chunk.usage.completion_tokens or 0,
            )
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                text.append(delta.content)
                on_text(delta.content)
            for part in delta.tool_calls or ():
                call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = part.id or call["id"]
                if part.function is not None:
                    call["name"] += part.function.name or ""
                    call["arguments"] += part.function.arguments or ""
    tool_calls = tuple(
        # A missing id stays empty: the runner gives it one that is unique in the session.
        ToolCall(id=c["id"], name=c["name"], arguments=c["arguments"] or "{}")
        for _, c in sorted(calls.items())
    )
    message = Message(role="assistant", content="".join(text) or None, tool_calls=tool_calls)
    return ModelReply(message=message, usage=usage)
