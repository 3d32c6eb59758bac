"""The one check of a call's arguments against its tool's JSON schema, before the tool runs.

The decision a reader must know: agentctl checks the subset of JSON Schema its own tools use
(`type`, `properties`, `required`, `items`, `enum`, `minItems`, `additionalProperties`; the
annotations `description`, `default`, `title` and `examples` are ignored) itself, in a few
lines, with messages that name the argument and what was expected. A schema that uses any other
keyword (an MCP server's `anyOf`, `$ref`, `pattern`, `minimum`…) is checked by `jsonschema`,
the reference validator, which ships with the MCP SDK: every run that has such a tool has it.
Without it, the subset is checked and the tool judges the rest. So built-in calls never pay
for importing `jsonschema` (about 45 ms), and a server never sees a call its schema refuses.

One leniency: an optional argument given as null is taken as absent (models send `"path":
null` for an argument they mean to leave out), as the tools themselves take it.
"""

from __future__ import annotations

import json
from typing import Any

# Keywords this module checks, and annotations that check nothing.
_CHECKED = frozenset(
    {"type", "properties", "required", "items", "enum", "minItems", "additionalProperties"}
)
_ANNOTATIONS = frozenset({"description", "default", "title", "examples", "$comment", "$schema"})
_TYPES: dict[str, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


def check_arguments(schema: dict[str, Any], arguments: dict[str, Any]) -> str | None:
    """The first way `arguments` break `schema`, naming the argument and what was expected;
    None when they fit (or the schema is not one a validator can use: the tool judges)."""
    if not isinstance(schema, dict):
        return None
    if not _in_subset(schema):
        full = _full_check(schema, arguments)
        if full is not _UNAVAILABLE:
            return full
    return _check(schema, arguments, "", top=True)


_UNAVAILABLE = "\0"  # no jsonschema here: fall back to the subset


def _in_subset(schema: Any) -> bool:
    """Whether every keyword of the schema (and of its parts) is one this module checks."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict):
        return False
    for key, value in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key not in _CHECKED:
            return False
        if key == "properties":
            if not isinstance(value, dict) or not all(map(_in_subset, value.values())):
                return False
        elif key in ("items", "additionalProperties") and not _in_subset(value):
            return False
    return True


_VALIDATORS: dict[str, Any] = {}  # a schema's JSON -> its validator, built once a process


def _full_check(schema: dict[str, Any], arguments: dict[str, Any]) -> str | None:
    try:
        import jsonschema
    except ImportError:
        return _UNAVAILABLE
    try:
        key = json.dumps(schema, sort_keys=True, default=str)
        validator = _VALIDATORS.get(key)
        if validator is None:
            validator = _VALIDATORS[key] = jsonschema.validators.validator_for(schema)(schema)
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
    except (jsonschema.SchemaError, TypeError, ValueError, RecursionError):
        return None  # a schema the validator cannot use: the tool judges the call
    if not errors:
        return None
    first = errors[0]
    where = _name(first.absolute_path)
    return f"argument {where}: {first.message}" if where else first.message


def _name(path: Any) -> str:
    """`content`, `steps[0]`, `data.key`, quoted as an argument is named to the model."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return f"'{text}'" if text else ""


def _is(value: Any, json_type: str) -> bool:
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if json_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if json_type == "boolean":
        return isinstance(value, bool)
    if json_type == "array":
        return isinstance(value, list)
    if json_type == "object":
        return isinstance(value, dict)
    if json_type == "null":
        return value is None
    return True  # a type name JSON Schema does not have: nothing to check


def _what(value: Any) -> str:
    """A value as the model should recognise it: its JSON type, and short JSON."""
    for json_type in ("boolean", "integer", "number", "string", "array", "object", "null"):
        if _is(value, json_type):
            break
    text = json.dumps(value, ensure_ascii=False, default=str)
    shown = text if len(text) <= 40 else text[:39] + "…"
    return f"{_TYPES.get(json_type, json_type)} ({shown})" if json_type != "null" else "null"


def _expected(schema: dict[str, Any]) -> str:
    if "enum" in schema and isinstance(schema["enum"], list):
        return "one of " + ", ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    types = schema.get("type")
    types = [types] if isinstance(types, str) else types if isinstance(types, list) else []
    names = [_TYPES.get(str(k), str(k)) for k in types]
    if not names:
        return "any value"
    if schema.get("items") and "array" in types and isinstance(schema["items"], dict):
        item = _expected(schema["items"])
        names = [f"an array of {_plural(item)}" if n == "an array" else n for n in names]
    return " or ".join(names)


def _plural(what: str) -> str:
    """`a string` -> `strings`, for `an array of strings`."""
    for article in ("a ", "an "):
        if what.startswith(article) and " or " not in what:
            return what.removeprefix(article) + "s"
    return what


def _check(schema: Any, value: Any, path: str, top: bool = False) -> str | None:
    if not isinstance(schema, dict):
        if schema is False:
            return f"argument '{path}' is not accepted"
        return None
    name = f"'{path}'"
    types = schema.get("type")
    types = [types] if isinstance(types, str) else types if isinstance(types, list) else None
    if types and not any(_is(value, str(k)) for k in types):
        if top:
            return f"the arguments are {_what(value)}; expected {_expected(schema)}"
        return f"argument {name} is {_what(value)}; expected {_expected(schema)}"
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        return f"argument {name} is {_what(value)}; expected {_expected(schema)}"
    if isinstance(value, list):
        least = schema.get("minItems")
        if isinstance(least, int) and len(value) < least:
            have = "no items" if not value else f"{len(value)} item{'s' * (len(value) > 1)}"
            return f"argument {name} has {have}; expected at least {least}"
        items = schema.get("items")
        if isinstance(items, dict | bool):
            for n, item in enumerate(value):
                if (problem := _check(items, item, f"{path}[{n}]")) is not None:
                    return problem
    if isinstance(value, dict):
        return _check_object(schema, value, path)
    return None


def _check_object(schema: dict[str, Any], value: dict[str, Any], path: str) -> str | None:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = schema.get("required")
    required = [str(r) for r in required] if isinstance(required, list) else []

    def inner(key: str) -> str:
        return f"{path}.{key}" if path else key

    for key in required:
        if key not in value:
            expected = _expected(properties.get(key) or {})
            return f"argument '{inner(key)}' is missing; expected {expected}"
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        sub = properties.get(key)
        if sub is None:
            if extra is False:
                known = ", ".join(properties) or "none"
                return f"argument '{inner(key)}' is not one of this tool's (they are: {known})"
            sub = extra if isinstance(extra, dict) else None
        if sub is None or (item is None and key not in required):
            continue  # unknown and allowed, or an optional argument left out as null
        if (problem := _check(sub, item, inner(key))) is not None:
            return problem
    return None
