"""JSON encoding of persisted models, with schema versions checked and upgraded on load.

Backends store the text this module gives them and index only ids, parents, states and times.
A payload newer than this code is refused (never half-loaded); an older one is upgraded by the
functions in UPGRADES, one version at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, TypeAdapter, ValidationError

from agentctl.domain.session import Message
from agentctl.errors import InvalidStateError

M = TypeVar("M", bound=BaseModel)

_MESSAGES = TypeAdapter(tuple[Message, ...])
_STORED = {"stored": True}  # the serializers' context for the stored form (session.py)


def _unchanged(payload: dict[str, Any]) -> dict[str, Any]:
    """For versions that only added fields with defaults."""
    return payload


def _task_state_2(payload: dict[str, Any]) -> dict[str, Any]:
    """3 replaced `approved` (call ids, for the rest of the session) by `approval` (one call,
    once). An old approval is dropped: the user is asked again rather than a call run twice."""
    return {k: v for k, v in payload.items() if k != "approved"}


# model name -> {version: function upgrading a payload of that version to the next}
UPGRADES: dict[str, dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    # 2 added pending_question.kind; 4 workspace_tree
    # 5 earlier, grants, auto_approve, instructions; 6 refused_params; 7 stalled; 8 token_fit;
    # 9 mcp
    "Task": {
        1: _unchanged,
        2: _task_state_2,
        3: _unchanged,
        4: _unchanged,
        5: _unchanged,
        6: _unchanged,
        7: _unchanged,
        8: _unchanged,
    },
    # 2 added allow; 3 the context settings; 4 pass_env; 5 sandbox, network; 6 mcp
    "TaskSpec": {1: _unchanged, 2: _unchanged, 3: _unchanged, 4: _unchanged, 5: _unchanged},
    # 2 workspace; 3 tokenizer; 5 added sandbox, network
    "SessionInfo": {1: _unchanged, 2: _unchanged, 3: _unchanged, 4: _unchanged},
    "Message": {1: _unchanged, 2: _unchanged},  # 2 added finish_reason; 3 provider_data
}


def encode(model: BaseModel) -> str:
    """The stored form: fields at their defaults are left out (decoding restores them), the
    schema version always kept (state.py). A task record of nulls and empty lists was 310
    bytes, a quarter of a 1,000-step store."""
    return model.__pydantic_serializer__.to_json(  # model_dump_json's own call, minus a layer
        model, exclude_defaults=True, by_alias=True, context=_STORED
    ).decode()


def encode_messages(messages: Sequence[Message]) -> str:
    """Messages in their stored form, as one JSON array (what `decode_messages` reads)."""
    return _MESSAGES.dump_json(
        tuple(messages), exclude_defaults=True, by_alias=True, context=_STORED
    ).decode()


def to_payload(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)


def decode(cls: type[M], data: str | bytes | dict[str, Any], *, where: str = "") -> M:
    """Validate a stored payload into `cls`, upgrading old versions; InvalidStateError if not."""
    place = f" in {where}" if where else ""
    try:
        payload = json.loads(data) if isinstance(data, (str, bytes)) else dict(data)
    except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise InvalidStateError(f"stored {cls.__name__}{place} is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidStateError(f"stored {cls.__name__}{place} is not a JSON object")
    payload = upgrade(cls, payload, place)
    try:
        return cls.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise InvalidStateError(
            f"stored {cls.__name__}{place} is invalid: {loc}: {first['msg']}"
        ) from None


def decode_messages(array: str | bytes | list[Any], *, where: str = "") -> tuple[Message, ...]:
    """A JSON array of stored messages (its text, or parsed), validated in one call (the fast
    path for a whole conversation). A message at an older schema version, or one that does
    not validate, falls back to one-by-one decoding: upgraded, or refused with its place."""
    try:
        if isinstance(array, list):
            return _MESSAGES.validate_python(array)
        return _MESSAGES.validate_json(array)
    except ValidationError:
        try:
            items = array if isinstance(array, list) else json.loads(array)
        except (ValueError, RecursionError) as exc:
            raise InvalidStateError(
                f"stored messages in {where} are not valid JSON: {exc}"
            ) from None
        if not isinstance(items, list):
            raise InvalidStateError(f"stored messages in {where} are not a JSON array") from None
        return tuple(decode(Message, item, where=where) for item in items)


def upgrade(cls: type[BaseModel], payload: dict[str, Any], place: str = "") -> dict[str, Any]:
    current, nested = _shape(cls)
    if current is None:
        return payload
    version = payload.get("schema_version", 1)
    if not isinstance(version, int):
        raise InvalidStateError(f"stored {cls.__name__}{place} has no valid schema_version")
    if version > current:
        raise InvalidStateError(
            f"stored {cls.__name__}{place} has schema version {version}, newer than this "
            f"agentctl understands ({current}); upgrade agentctl"
        )
    steps = UPGRADES.get(cls.__name__, {})
    while version < current:
        payload = steps[version](payload)
        version += 1
        payload["schema_version"] = version
    # Versioned models inside this one (a Checkpoint's Task, a SessionInfo's TaskSpec)
    # carry their own schema_version: upgrade them too.
    for name, inner_cls in nested:
        inner = payload.get(name)
        if isinstance(inner, dict):
            payload = {**payload, name: upgrade(inner_cls, inner, place)}
    return payload


_SHAPES: dict[type[BaseModel], tuple[int | None, tuple[tuple[str, type[BaseModel]], ...]]] = {}


def _shape(cls: type[BaseModel]) -> tuple[int | None, tuple[tuple[str, type[BaseModel]], ...]]:
    """A model's schema version (None: not versioned) and its fields that hold a model, read
    off the class once: every checkpoint a read decodes asked pydantic again (a third of
    `verify`'s time at 5,000 sessions)."""
    shape = _SHAPES.get(cls)
    if shape is None:
        fields = cls.model_fields
        version = fields.get("schema_version")
        nested = []
        for name, field in fields.items():
            for candidate in (field.annotation, *get_args(field.annotation)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    nested.append((name, candidate))
                    break
        shape = _SHAPES[cls] = (
            None if version is None else int(version.default),
            tuple(nested),
        )
    return shape
