"""Shared schemathesis helpers: the app without its lifespan, the settings, every route of an app fuzzed.

``MLSD_FUZZ_EXAMPLES`` raises the number of cases per route (the CI default keeps the suite short).
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings


def once(app: Any) -> Any:
    """The app with its lifespan left out: schemathesis enters and leaves it per case, a server once."""
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        await app(scope, receive, send)
    return wrapped



EXAMPLES = int(os.environ.get("MLSD_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def fuzz_every_route(app: Any, excluded_checks: tuple[Any, ...] = ()) -> list[str]:
    """Every operation of ``app``'s OpenAPI document under schemathesis's checks; the operations checked."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", once(app))
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(operation.as_strategy())
        @FUZZ
        def run(case: Any) -> None:
            case.call_and_validate(excluded_checks=list(excluded_checks))

        run()
        checked.append(f"{operation.method.upper()} {operation.path}")
    return checked
