"""The pages a person opens in a browser: ``/`` (what this service is, with links) and ``/docs`` (its API).

``/docs`` is rendered from the same OpenAPI document ``/openapi.json`` serves, on the server and with
no script or CDN asset (the machines mlsd runs on may be offline): each route with its method,
summary, body fields (type, bounds, required, description) or parameters, and its answers.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from mlsd.monitoring.dashboard import STYLE


def _field_rows(schema: Mapping[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    rows = []
    for name, spec in schema.get("properties", {}).items():
        kind = spec.get("type", "object")
        kind = " | ".join(kind) if isinstance(kind, list) else str(kind)
        if kind.startswith("array") and isinstance(spec.get("items"), dict) and "properties" in spec["items"]:
            kind += " of {" + ", ".join(spec["items"]["properties"]) + "}"
        bounds = ", ".join(f"{k} {spec[k]}" for k in ("minimum", "maximum", "minLength", "maxLength", "maxItems",
                                                       "minItems") if k in spec)
        rows.append(f"<tr><td><code>{html.escape(name)}</code></td><td>{html.escape(kind)}</td>"
                    f"<td>{'yes' if name in required else ''}</td><td>{html.escape(bounds)}</td>"
                    f"<td style='text-align:left'>{html.escape(str(spec.get('description', '')))}</td></tr>")
    return rows


def _operation(path: str, method: str, op: Mapping[str, Any]) -> str:
    parts = [f"<h3><code>{method.upper()} {html.escape(path)}</code></h3>",
             f"<p>{html.escape(str(op.get('summary', '')))}"
             + (" <b>Needs the token</b> (<code>Authorization: Bearer TOKEN</code>)." if op.get("security") else "")
             + "</p>"]
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    header = "<tr><th>field</th><th>type</th><th>required</th><th>bounds</th><th>description</th></tr>"
    if body:
        parts.append(f"<table>{header}{''.join(_field_rows(body))}</table>")
    if op.get("parameters"):
        rows = [f"<tr><td><code>{html.escape(p['name'])}</code> ({p['in']})</td>"
                f"<td>{html.escape(str(p['schema'].get('type', '')))}</td><td>{'yes' if p.get('required') else ''}</td>"
                f"<td>{html.escape(', '.join(f'{k} {v}' for k, v in p['schema'].items() if k != 'type'))}</td>"
                "<td></td></tr>" for p in op["parameters"]]
        parts.append(f"<table>{header}{''.join(rows)}</table>")
    answers = ", ".join(f"{code} ({html.escape(str(a.get('description', '')))})"
                        for code, a in op.get("responses", {}).items())
    parts.append(f"<p style='font-size:13px'>Answers: {answers}</p>")
    return "".join(parts)


def api_page(document: Mapping[str, Any]) -> str:
    """The API reference rendered from an OpenAPI document."""
    title = html.escape(str(document.get("info", {}).get("title", "mlsd service")))
    sections = [_operation(path, method, op) for path, methods in document.get("paths", {}).items()
                for method, op in methods.items()]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}: API</title><style>{STYLE}"
            f"td{{vertical-align:top}}</style></head><body><h1>{title}: API</h1>"
            "<p><a href='.'>home</a> · <a href='openapi.json'>openapi.json</a> (OpenAPI 3.1)</p>"
            f"{''.join(sections)}</body></html>")


def index_page(system: str, model_version: str, links: Sequence[tuple[str, str]]) -> str:
    """``/``: the service's name and model, and links to its pages."""
    items = "".join(f"<li><a href='{html.escape(href.lstrip('/'))}'>{html.escape(href)}</a>: {html.escape(text)}</li>"
                    for href, text in links)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>mlsd {html.escape(system)}</title>"
            f"<style>{STYLE}</style></head><body><h1>mlsd {html.escape(system)} service</h1>"
            f"<p>Serving model version {html.escape(model_version)}.</p><ul>{items}</ul></body></html>")


def not_found_body(path: str, routes: Sequence[str]) -> dict[str, Any]:
    """The JSON of a 404: what was asked and what exists (as every other error, a JSON object)."""
    return {"error": f"no route {path}", "routes": sorted(routes)}
