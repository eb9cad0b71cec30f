"""Request validation with field-level messages: every problem in a body is reported at once.

A schema is a dict of :class:`Field`; nested objects and lists of objects have their own schemas.
Unknown fields are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Schema = Mapping[str, "Field"]

_TYPES: dict[str, tuple[type, ...]] = {"integer": (int,), "number": (int, float), "string": (str,),
                                       "boolean": (bool,), "object": (dict,), "array": (list,)}


@dataclass(frozen=True)
class Field:
    """One field: JSON type, whether it is required, bounds, and the schema of nested items."""

    type: str
    required: bool = True
    minimum: float | None = None
    maximum: float | None = None
    min_items: int | None = None  # an array's items, a string's characters
    max_items: int | None = None
    properties: Schema | None = None
    items: Schema | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


MAX_EVENT_TIME_S = float(2**32)  # 2106-02-07: a larger "Unix time" is a mistake (or an attack), not an event time
def event_time(description: str = "event time, Unix seconds (default: now)", *, required: bool = False) -> Field:
    """The field of an event time: finite, non-negative, bounded.

    Within the bound an event time is the client's word: the monitor does not let one far ahead of
    its clock move it (:mod:`mlsd.monitoring.online`).
    """
    return Field("number", required=required, minimum=0, maximum=MAX_EVENT_TIME_S, description=description)


class RequestError(Exception):
    """A request body that failed validation; ``errors`` lists ``{"field", "message"}``."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def validate(body: Any, schema: Schema) -> dict[str, Any]:
    """Return ``body`` if it matches ``schema``; otherwise raise :class:`RequestError` with every problem."""
    errors: list[dict[str, str]] = []
    if not isinstance(body, dict):
        raise RequestError([{"field": "$", "message": f"expected a JSON object, got {_json_type(body)}"}])
    _check_object(body, schema, "", errors)
    if errors:
        raise RequestError(errors)
    return body


def _check_object(value: dict[str, Any], schema: Schema, path: str, errors: list[dict[str, str]]) -> None:
    for name in value:
        if name not in schema:
            errors.append({"field": f"{path}{name}", "message": f"unknown field; allowed: {sorted(schema)}"})
    for name, spec in schema.items():
        where = f"{path}{name}"
        if name not in value or value[name] is None:
            if spec.required:
                errors.append({"field": where, "message": "required field is missing"})
            continue
        _check_value(value[name], spec, where, errors)


def _check_value(value: Any, spec: Field, where: str, errors: list[dict[str, str]]) -> None:
    if not _is_type(value, spec.type):
        errors.append({"field": where, "message": f"expected {spec.type}, got {_json_type(value)}"})
        return
    enum = spec.extra.get("enum")
    if enum is not None and value not in enum:
        errors.append({"field": where, "message": f"not one of the allowed values: {enum!r}"})
        return
    if spec.type in ("integer", "number"):
        if spec.minimum is not None and value < spec.minimum:
            errors.append({"field": where, "message": f"must be >= {spec.minimum}"})
        if spec.maximum is not None and value > spec.maximum:
            errors.append({"field": where, "message": f"must be <= {spec.maximum}"})
    elif spec.type == "string":
        if spec.min_items is not None and len(value) < spec.min_items:
            errors.append({"field": where, "message": f"needs at least {spec.min_items} character(s)"})
        if spec.max_items is not None and len(value) > spec.max_items:
            errors.append({"field": where, "message": f"at most {spec.max_items} characters, got {len(value)}"})
    elif spec.type == "object" and spec.properties is not None:
        _check_object(value, spec.properties, f"{where}.", errors)
    elif spec.type == "array":
        if spec.min_items is not None and len(value) < spec.min_items:
            errors.append({"field": where, "message": f"needs at least {spec.min_items} item(s), got {len(value)}"})
        if spec.max_items is not None and len(value) > spec.max_items:
            errors.append({"field": where, "message": f"at most {spec.max_items} items, got {len(value)}"})
            return
        if spec.items is not None:
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    errors.append({"field": f"{where}[{i}]", "message": f"expected object, got {_json_type(item)}"})
                else:
                    _check_object(item, spec.items, f"{where}[{i}].", errors)


def _is_type(value: Any, kind: str) -> bool:
    # bool is an int subclass in Python; JSON true is not a number.
    return isinstance(value, _TYPES[kind]) and (kind == "boolean" or not isinstance(value, bool))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for name in ("boolean", "integer", "number", "string", "array", "object"):
        if isinstance(value, _TYPES[name]) and (name == "boolean" or not isinstance(value, bool)):
            return name
    return type(value).__name__


def json_schema(schema: Schema) -> dict[str, Any]:
    """The schema as a JSON Schema object (for the OpenAPI document); optional fields admit ``null``."""
    properties: dict[str, Any] = {}
    for name, spec in schema.items():
        node: dict[str, Any] = {"type": spec.type, **spec.extra}
        if not spec.required:  # an optional field may be null (taken as absent), as the decoders do
            node["type"] = [spec.type, "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        if spec.description:
            node["description"] = spec.description
        lengths = ("minLength", "maxLength") if spec.type == "string" else ("minItems", "maxItems")
        for key, attr in (("minimum", spec.minimum), ("maximum", spec.maximum), (lengths[0], spec.min_items),
                          (lengths[1], spec.max_items)):
            if attr is not None:
                node[key] = attr
        if spec.properties is not None:
            node.update(json_schema(spec.properties))
        if spec.items is not None:
            node["items"] = json_schema(spec.items)
        properties[name] = node
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": [n for n, s in schema.items() if s.required]}
