"""``multipart/form-data`` bodies for routes that take a file: turned into the JSON body the route checks.

A service that names ``upload_fields`` (fields of its request schema that hold a base64 string, such
as an image) also takes a form upload: each file part of one of those names becomes that field's
base64 text, each other part a field whose value is read as the schema's type (``k=5`` is an integer;
a value that is not one is left as text, so the schema check names the field). The body is read under
the same size and time limits as JSON before it is parsed, and then checked by the same decoder, so a
form and a JSON body are refused for the same reasons with the same messages. Parsing is Starlette's
multipart parser (python-multipart), fed from the bytes already read.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import AsyncGenerator
from typing import Any

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from mlsd.serving.validation import Schema

_INTEGER = re.compile(r"^[+-]?\d{1,18}$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_BOOLEANS = {"true": True, "false": False}


class FormError(ValueError):
    """A form body that cannot be parsed, or a part the route does not take (a 400 or 422)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def is_form(media_type: str) -> bool:
    return media_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


async def form_body(raw: bytes, headers: Headers, schema: Schema, upload_fields: tuple[str, ...],
                    max_part_bytes: int) -> dict[str, Any]:
    """The JSON-equivalent body of a ``multipart/form-data`` request (see the module)."""

    async def stream() -> AsyncGenerator[bytes, None]:
        yield raw

    parser = MultiPartParser(headers, stream(), max_files=len(upload_fields), max_fields=len(schema),
                             max_part_size=max_part_bytes)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise FormError(f"multipart body: {exc.message}") from None
    body: dict[str, Any] = {}
    try:
        for name, value in form.multi_items():
            if name in body:
                raise FormError("sent more than once", name)
            if isinstance(value, UploadFile):
                if name not in upload_fields:
                    raise FormError(f"a file part is taken only for {', '.join(upload_fields)}", name)
                body[name] = base64.b64encode(await value.read()).decode("ascii")
            else:
                body[name] = _typed(value, schema[name].type) if name in schema else value
    finally:
        await form.close()
    return body


def _typed(text: str, kind: str) -> Any:
    """A form value as the schema's scalar type where it reads as one; otherwise the text itself."""
    value = text.strip()
    if kind == "integer" and _INTEGER.match(value):
        return int(value)
    if kind == "number" and _NUMBER.match(value) and math.isfinite(number := float(value)):
        return number  # 1e999 stays text, so it is refused as in JSON rather than sent on as null
    if kind == "boolean" and value.lower() in _BOOLEANS:
        return _BOOLEANS[value.lower()]
    return text
