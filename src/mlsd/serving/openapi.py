"""The OpenAPI 3.1 document of a service's routes, as served at ``/openapi.json`` and ``/docs``.

Built from the same schemas the edge validates with (:mod:`mlsd.serving.validation`), so the document
cannot drift from what a route accepts; a service's optional routes (:class:`EventIntake`,
:class:`LookupRoute`, labels) appear only when it has them.
"""

from __future__ import annotations

import re
from typing import Any

from mlsd.serving.protocols import LABELS_ROUTE, EventIntake, LookupRoute, ScoringService
from mlsd.serving.validation import Schema, json_schema


def openapi_document(service: ScoringService, label_schema: Schema | None = None, *,
                     secured: bool = False) -> dict[str, Any]:
    """OpenAPI 3.1 description of the service's routes.

    ``label_schema``: the labels route is served; ``secured``: writes need the bearer token.
    """
    error = {"description": "error", "content": {"application/json": {"schema": {"type": "object"}}}}
    unauthorized = {"description": "the service's token is needed (Authorization: Bearer TOKEN)"}
    write = {"400": error, "401": unauthorized, "408": error, "413": error, "415": error, "422": error}
    security: dict[str, Any] = {"security": [{"token": []}]} if secured else {}
    paths: dict[str, Any] = {}
    if isinstance(service, EventIntake):
        paths[service.intake_route] = {"post": {
            "summary": f"Send {service.system} events (durable before the reply)", **security,
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": json_schema(service.intake_schema)}}},
            "responses": {"200": {"description": "accepted and duplicate counts"}, "409": error, **write}}}
    if isinstance(service, LookupRoute):
        names = [part.strip("{}").split(":")[0] for part in service.lookup_route.split("/") if part.startswith("{")]
        query = [name for name in service.request_schema if name not in (*names, "request_id", "timestamp")]
        fields = json_schema(service.request_schema)["properties"]

        def parameter(name: str, where: str) -> dict[str, Any]:
            schema = {**fields.get(name, {"type": "integer"})}
            if isinstance(schema.get("type"), list):  # a query parameter is present or absent, never null
                schema["type"] = next(t for t in schema["type"] if t != "null")
            return {"name": name, "in": where, "required": where == "path", "schema": schema}
        paths[re.sub(r":\w+}", "}", service.lookup_route)] = {"get": {  # OpenAPI paths carry no converters
            "summary": f"Score a {service.system} request given in the path and query",
            "parameters": [parameter(n, "path") for n in names] + [parameter(n, "query") for n in query],
            "responses": {"200": {"description": "the ranked list"}, "404": error, "422": error, "503": error}}}
    if label_schema is not None:
        paths[LABELS_ROUTE] = {"post": {
            "summary": "Send the outcomes of scored requests (durable before the reply)", **security,
            "requestBody": {"required": True, "content": {"application/json": {"schema": json_schema(label_schema)}}},
            "responses": {"200": {"description": "accepted count"}, **write}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"mlsd {service.system} service", "version": "1"},
        "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            service.route: {"post": {
                "summary": f"Score a {service.system} request",
                "requestBody": {"required": True, "content": _request_content(service)},
                "responses": {"200": {"description": "ranked candidates with calibrated probabilities"},
                              "400": error, "401": {"description": "with --token-all: the service's token is needed"},
                              "408": {"description": "the body did not arrive in time"}, "413": error,
                              "404": {"description": "an entity the service does not know"},
                              "415": {"description": "the body is not of a media type the route takes"}, "422": error,
                              "503": {"description": "overloaded, or a store not ready; retry after Retry-After"}},
            }},
            "/healthz": {"get": {"summary": "readiness and the model version",
                                 "responses": {"200": error, "503": {"description": "a store is not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
            **paths,
        },
    }


def upload_fields(service: ScoringService) -> tuple[str, ...]:
    """The request fields a service also takes as file parts of a form (none unless it names them)."""
    return tuple(getattr(service, "upload_fields", ()))


def _request_content(service: ScoringService) -> dict[str, Any]:
    """The scoring route's media types: JSON, and a form whose upload fields are files when it takes any."""
    schema = json_schema(service.request_schema)
    content = {"application/json": {"schema": schema}}
    uploads = upload_fields(service)
    if uploads:
        binary = {"type": "string", "contentMediaType": "application/octet-stream"}
        properties = {name: binary if name in uploads else spec for name, spec in schema["properties"].items()}
        content["multipart/form-data"] = {"schema": {**schema, "properties": properties}}
    return content
