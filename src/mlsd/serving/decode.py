"""Typed request decoding with msgspec: a route's :data:`~mlsd.serving.validation.Schema` compiled once.

The schema stays the single source (it also renders the OpenAPI document); :func:`compile_schema`
turns it into a msgspec type with the same rules: types (an integer is not a float, a boolean is not
a number), bounds, list lengths, enums, unknown fields refused, ``null`` taken as absent (the
checked body a service receives has no key for an optional field sent as ``null``).
:class:`BodyDecoder` parses and checks a body in one pass in C and raises
:class:`~mlsd.serving.validation.RequestError` naming the field, as the hand-written validator does.
Chosen over that validator with ``json``/orjson by ``benchmarks/request_decode.py`` (RESULTS.md);
msgspec stops at the first problem, so a refused body is checked again by the validator, which lists
every problem (valid bodies, nearly all, take the fast path only). NaN and Infinity are refused, and
so are numbers beyond a float's range or integers beyond 64 bits (400), and nesting deeper than the
parser's recursion limit (400). An integer field takes an integer-valued number (``3.0``), as JSON
Schema and so the OpenAPI document say, and the service receives it as an ``int``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

from mlsd.serving.validation import Field, RequestError, Schema, validate

_SCALARS: dict[str, Any] = {"integer": int, "number": float, "string": str, "boolean": bool}
_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED = re.compile(r"(?:unknown|missing required) field `(?P<name>[^`]+)`")
_JSON_NAMES = {"int": "integer", "float": "number", "str": "string", "bool": "boolean", "array": "array",
               "object": "object", "null": "null"}
# msgspec's messages in the words the OpenAPI document uses (JSON type names, the schema's bounds)
_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^Expected `(\w+)`, got `(\w+)`$"), "expected {0}, got {1}"),
    (re.compile(r"^Expected `array` of length >= (\d+)$"), "needs at least {0} item(s)"),
    (re.compile(r"^Expected `array` of length <= (\d+)$"), "at most {0} items"),
    (re.compile(r"^Expected `\w+` (>=|<=) (\S+)$"), "must be {0} {1}"),
    (re.compile(r"^Object contains unknown field"), "unknown field"),
    (re.compile(r"^Object missing required field"), "required field is missing"),
    (re.compile(r"^Invalid enum value (.*)$"), "not one of the allowed values: {0}"),
)


class BodyError(ValueError):
    """A body that is not JSON at all (a 400, not a 422)."""


def _field_type(spec: Field, name: str) -> Any:
    kind: Any
    if spec.type in _SCALARS:
        kind = _SCALARS[spec.type]
        enum = spec.extra.get("enum")
        if enum:
            kind = Literal[tuple(enum)]
    elif spec.type == "object":
        kind = compile_schema(spec.properties, name) if spec.properties is not None else dict[str, Any]
    elif spec.type == "array":
        kind = list[compile_schema(spec.items, f"{name}Item")] if spec.items is not None else list[Any]  # type: ignore[misc]
    else:
        raise ValueError(f"field {name}: unknown type {spec.type!r}")
    bounds: dict[str, Any] = {key: value for key, value in (("ge", spec.minimum), ("le", spec.maximum),
                                                            ("min_length", spec.min_items),
                                                            ("max_length", spec.max_items)) if value is not None}
    return Annotated[kind, msgspec.Meta(**bounds)] if bounds else kind


def compile_schema(schema: Schema, name: str = "Body") -> type:
    """A msgspec Struct type checking what ``schema`` describes (unknown fields refused)."""
    fields: list[tuple[str, Any, Any] | tuple[str, Any]] = []
    for field_name, spec in schema.items():
        kind = _field_type(spec, f"{name}_{field_name}")
        # null counts as absent, as in the validator: a required field must hold a value
        fields.append((field_name, kind) if spec.required else (field_name, kind | None, None))
    # omit_defaults: an optional field sent as null leaves the checked body as if it were absent
    return msgspec.defstruct(name, fields, kw_only=True, forbid_unknown_fields=True, omit_defaults=True)


class BodyDecoder:
    """Parses a raw body and checks it against a schema; returns it as plain Python values."""

    def __init__(self, schema: Schema, name: str = "Body") -> None:
        self.schema, self.type = schema, compile_schema(schema, name)
        self._decoder = msgspec.json.Decoder()

    def decode(self, raw: bytes) -> dict[str, Any]:
        try:
            body = self._decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise BodyError(f"body is not valid JSON: {exc}") from None
        except RecursionError:
            raise BodyError("body is nested too deeply") from None
        return self.check(body, nulls=b"null" in raw)

    def check(self, body: Any, *, nulls: bool = True) -> dict[str, Any]:
        """``body`` (parsed JSON) if it matches the schema; else :class:`RequestError` naming the field.

        ``nulls``: the body may hold a ``null`` (then it is rebuilt without the optional fields sent
        as null, which costs a copy; a raw body without the word takes the body as parsed).
        """
        if not isinstance(body, dict):
            kind = "array" if isinstance(body, list) else type(body).__name__
            raise RequestError([{"field": "$", "message": f"expected a JSON object, got {kind}"}])
        try:
            checked: Any = msgspec.convert(body, self.type)
        except msgspec.ValidationError as exc:
            if "got `float`" in str(exc) and _integral(body, self.schema):
                return self.check(body, nulls=nulls)  # 3.0 where an integer goes: taken as 3, then checked again
            # msgspec stops at the first problem; a refused body is rare, so the validator lists them all
            validate(body, self.schema)
            raise RequestError([field_error(str(exc))]) from None
        # the body as the schema reads it: an optional field sent as null is absent, as documented
        if not nulls:
            return body
        rebuilt: dict[str, Any] = msgspec.to_builtins(checked)
        return rebuilt


def _integral(body: dict[str, Any], schema: Schema) -> bool:
    """Turn integer-valued floats in ``body``'s integer fields into ints, in place; whether any was."""
    changed = False
    for name, spec in schema.items():
        value = body.get(name)
        if spec.type == "integer" and isinstance(value, float) and value.is_integer():
            body[name], changed = int(value), True
        elif spec.type == "object" and spec.properties is not None and isinstance(value, dict):
            changed = _integral(value, spec.properties) or changed
        elif spec.type == "array" and spec.items is not None and isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    changed = _integral(item, spec.items) or changed
    return changed


def field_error(text: str) -> dict[str, str]:
    """msgspec's ``"<message> - at `$.a[0].b`"`` as ``{"field": "a[0].b", "message": ...}``."""
    match = _AT.match(text)
    assert match is not None  # the pattern matches any text
    message, path = match["message"], (match["path"] or "").removeprefix(".")
    named = _NAMED.search(message)
    if named:  # an unknown or missing field is named in the message, at its parent's path
        path = f"{path}.{named['name']}" if path else named["name"]
    for pattern, template in _MESSAGES:
        found = pattern.match(message)
        if found:
            message = template.format(*(_JSON_NAMES.get(g, g) for g in found.groups()))
            break
    return {"field": path or "$", "message": message}
