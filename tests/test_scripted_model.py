"""The scripted model through the real openai client: HTTP, SSE deltas, usage, faults."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from agentctl.domain.session import Message, ScriptToolCall, ScriptTurn
from agentctl.errors import ModelError
from agentctl.llm.openai_chat import ModelConfig, OpenAIModelClient
from agentctl.llm.scripted import Fault, ScriptedModel, ScriptedServer

SCRIPT = (
    ScriptTurn(content="Hello there, this is a longer reply to split into deltas."),
    ScriptTurn(
        content="Two calls:",
        tool_calls=(
            ScriptToolCall(
                name="complete_step",
                arguments={"summary": "got {{last_input}}", "data": {"k": [1, 2]}},
            ),
            ScriptToolCall(name="finish", arguments='{"result": "broken'),
        ),
    ),
)


@pytest.fixture
def served() -> Iterator[tuple[ScriptedModel, OpenAIModelClient]]:
    model = ScriptedModel(SCRIPT)
    with ScriptedServer(model) as server:
        client = OpenAIModelClient(
            ModelConfig(model="scripted", base_url=server.base_url, api_key=None, max_retries=0)
        )
        yield model, client


def test_text_streams_in_pieces_and_arrives_whole(
    served: tuple[ScriptedModel, OpenAIModelClient],
) -> None:
    _, client = served
    pieces: list[str] = []
    reply = client.complete([Message(role="user", content="hi")], [], pieces.append)
    assert len(pieces) > 2
    assert "".join(pieces) == reply.message.content == SCRIPT[0].content
    assert reply.usage.calls == 1
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0


def test_the_reply_is_chosen_by_the_conversation_not_a_counter(
    served: tuple[ScriptedModel, OpenAIModelClient],
) -> None:
    model, client = served
    conversation = [
        Message(role="user", content="hi"),
        Message(role="assistant", content="Hello"),
        Message(role="user", content="the answer"),
    ]
    first = client.complete(conversation, [], lambda _t: None)
    again = client.complete(conversation, [], lambda _t: None)  # a resume asks the same again
    assert first == again
    calls = first.message.tool_calls
    assert [c.name for c in calls] == ["complete_step", "finish"]
    assert [c.id for c in calls] == ["call_1_0", "call_1_1"]
    assert json.loads(calls[0].arguments) == {"summary": "got the answer", "data": {"k": [1, 2]}}
    assert calls[1].arguments == '{"result": "broken'  # malformed on purpose, passed verbatim
    assert model.requests == {1: 2}


def test_a_finished_script_fails_loudly(served: tuple[ScriptedModel, OpenAIModelClient]) -> None:
    _, client = served
    conversation = [Message(role="assistant", content="x"), Message(role="user", content="y")] * 2
    conversation.pop()
    with pytest.raises(ModelError, match="no reply for turn 3: its script has 2 turns"):
        client.complete(conversation, [], lambda _t: None)


def test_injected_http_errors_become_model_errors(
    served: tuple[ScriptedModel, OpenAIModelClient],
) -> None:
    model, client = served
    model.faults.append(Fault(status=500))
    with pytest.raises(ModelError, match="answered 500: injected fault 500"):
        client.complete([Message(role="user", content="hi")], [], lambda _t: None)
    reply = client.complete([Message(role="user", content="hi")], [], lambda _t: None)
    assert reply.message.content == SCRIPT[0].content


def test_an_unreachable_server_is_a_model_error() -> None:
    client = OpenAIModelClient(
        ModelConfig(
            model="m", base_url="http://127.0.0.1:9/v1", api_key="sk-secret-123", max_retries=0
        )
    )
    with pytest.raises(
        ModelError, match=r"cannot reach the model server at http://127\.0\.0\.1:9/v1"
    ) as info:
        client.complete([Message(role="user", content="hi")], [], lambda _t: None)
    assert "sk-secret-123" not in str(info.value)


def test_no_key_and_no_server_is_a_clear_model_error() -> None:
    with pytest.raises(ModelError, match="set OPENAI_API_KEY"):
        OpenAIModelClient(ModelConfig(model="gpt-4o-mini", base_url=None, api_key=None))


def test_429_with_retry_after_and_500_are_retried_then_succeed() -> None:
    model = ScriptedModel(SCRIPT)
    model.faults += [Fault(status=429, retry_after=0.3), Fault(status=500)]
    with ScriptedServer(model) as server:
        client = OpenAIModelClient(
            ModelConfig(model="scripted", base_url=server.base_url, api_key=None, max_retries=2)
        )
        started = time.monotonic()
        reply = client.complete([Message(role="user", content="hi")], [], lambda _t: None)
        waited = time.monotonic() - started
    assert reply.message.content == SCRIPT[0].content
    assert model.requests == {0: 3}  # two failures, then the reply
    assert waited >= 0.3  # Retry-After was honoured


def test_retries_run_out_with_a_clear_error() -> None:
    model = ScriptedModel(SCRIPT)
    model.faults.append(Fault(status=429, retry_after=0.05, times=5))
    with ScriptedServer(model) as server:
        client = OpenAIModelClient(
            ModelConfig(model="scripted", base_url=server.base_url, api_key=None, max_retries=2)
        )
        with pytest.raises(ModelError, match="answered 429"):
            client.complete([Message(role="user", content="hi")], [], lambda _t: None)
    assert model.requests == {0: 3}
