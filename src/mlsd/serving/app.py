"""The ASGI inference service: scoring route, health, Prometheus metrics, OpenAPI, load shedding.

A system plugs in a :class:`~mlsd.serving.protocols.ScoringService` (its request schema and its
scoring function); this module gives every system the same HTTP behaviour: a body that is not
``application/json`` is a 415, malformed JSON a 400, an oversized body a 413 (before it is read), a
slow one a 408, schema problems a 422 listing each field, a full scoring queue a fast 503 with
``Retry-After`` (:mod:`mlsd.serving.admission`), a write without the token a 401
(:mod:`mlsd.serving.auth`), and every scored request a line in the feature log. Scoring runs on the
event loop, one request at a time: it is short CPU work with no I/O worth awaiting (an online-store
batch read of SQLite or Redis). The routes' OpenAPI document is built in :mod:`mlsd.serving.openapi`.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from mlsd.core.errors import MlsdError, StoreUnavailableError, UnknownEntityError
from mlsd.monitoring.dashboard import dashboard_html
from mlsd.monitoring.runner import LabelLog, MonitorCollector, MonitorRunner, read_state
from mlsd.serving.admission import Admission, BodyRefusedError, read_body
from mlsd.serving.auth import authorized, is_json
from mlsd.serving.decode import BodyDecoder, BodyError
from mlsd.serving.feature_log import FeatureLog
from mlsd.serving.openapi import openapi_document, upload_fields
from mlsd.serving.pages import api_page, index_page, not_found_body
from mlsd.serving.protocols import LABEL_SCHEMA, LABELS_ROUTE, EventIntake, LookupRoute, ScoringService
from mlsd.serving.upload import FormError, form_body, is_form
from mlsd.serving.validation import RequestError, Schema

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Monitoring:
    """What a service needs to accept labels and publish its monitor: the label log and the runner."""

    labels: LabelLog
    runner: MonitorRunner | None
    out_dir: Path

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
        self.labels.close()


@dataclass(frozen=True)
class EdgeLimits:
    """What the service's edge accepts: body size and read time, the scoring queue, who may write."""

    max_in_flight: int = 64  # admitted requests (waiting or being scored) per process
    queue_budget_s: float = 0.025  # expected wait in the queue beyond which a request is shed
    max_body_bytes: int = 1 << 20
    body_timeout_s: float = 10.0
    token: str | None = None  # bearer token of the routes that change state (None: open, loopback only)
    token_all: bool = False  # the scoring route needs the token too


def multiprocess_registry(monitor_dir: Path | None) -> CollectorRegistry | None:
    """With ``PROMETHEUS_MULTIPROC_DIR`` set (several worker processes or replicas), a registry that
    sums every process's metric files, plus the monitor's collector; None in a single process."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return None
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    if monitor_dir is not None:
        registry.register(MonitorCollector(monitor_dir))
    return registry


def create_app(service: ScoringService, feature_log: FeatureLog, *, max_in_flight: int = 64,
               max_body_bytes: int = 1 << 20, monitoring: Monitoring | None = None,
               limits: EdgeLimits | None = None) -> ASGIApp:
    """The service's ASGI application; with ``monitoring``, labels and a dashboard.

    ``limits`` sets the edge (``max_in_flight`` and ``max_body_bytes`` are shorthands for its fields).
    """
    limits = limits or EdgeLimits(max_in_flight=max_in_flight, max_body_bytes=max_body_bytes)
    admission = Admission(limits.max_in_flight, limits.queue_budget_s)
    metrics = CollectorRegistry()
    if monitoring is not None:
        metrics.register(MonitorCollector(monitoring.out_dir))
    requests = Counter("mlsd_requests", "Scoring requests by HTTP status", ["status"], registry=metrics)
    latency = Histogram("mlsd_request_seconds", "Scoring latency (server side)", registry=metrics,
                        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5))
    shed = Counter("mlsd_shed_requests", "Requests answered 503 by load shedding", registry=metrics)
    candidates = Histogram("mlsd_candidates", "Candidates per request", registry=metrics,
                           buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
    version = Gauge("mlsd_model_version", "Registered model version being served", registry=metrics,
                    multiprocess_mode="max")
    by_status = {code: requests.labels(str(code)) for code in (200, 400, 413, 422, 503)}
    label_schema: Schema = getattr(service, "label_schema", LABEL_SCHEMA)
    request_decoder, label_decoder = BodyDecoder(service.request_schema, "Request"), BodyDecoder(label_schema, "Labels")

    uploads = upload_fields(service)
    form = (service.request_schema, uploads) if uploads else None

    async def score(request: Request) -> Response:
        return await scored(request, await _json_body(request, limits, request_decoder, write=limits.token_all,
                                                      form=form))

    # bound once: an isinstance check against a Protocol costs ~20 µs, a tenth of a PYMK lookup
    lookup_body = service.lookup_body if isinstance(service, LookupRoute) else None

    async def lookup(request: Request) -> Response:
        assert lookup_body is not None  # the route exists only for a LookupRoute
        if limits.token_all and not authorized(request, limits.token):
            return _unauthorized()
        try:
            made = lookup_body(request.path_params, request.query_params)
            body: dict[str, Any] | Response = request_decoder.decode(orjson.dumps(made))
        except RequestError as exc:
            body = JSONResponse({"error": "invalid request", "errors": exc.errors}, status_code=422)
        except BodyError as exc:
            body = _error(400, str(exc))
        return await scored(request, body)

    async def scored(request: Request, body: dict[str, Any] | Response) -> Response:
        started = time.perf_counter()
        status = 200
        try:
            if isinstance(body, Response):
                status = body.status_code
                return body
            if not admission.admit():
                status = 503
                shed.inc()
                return _overloaded()
            async with admission.turn() as scored:
                if not scored:
                    status = 503
                    shed.inc()
                    return _overloaded()
                try:
                    request_id = str(body.get("request_id") or uuid.uuid4().hex)
                    response, record = service.score(body, request_id)
                except RequestError as exc:
                    status = 422
                    return JSONResponse({"error": "invalid request", "errors": exc.errors}, status_code=422)
                except UnknownEntityError as exc:
                    status = 404
                    return _error(404, str(exc))
                except StoreUnavailableError as exc:  # e.g. an online store restarted empty: no defaults served
                    status = 503
                    return JSONResponse({"error": str(exc)}, status_code=503, headers={"retry-after": "5"})
                except MlsdError as exc:
                    status = 422
                    return _error(422, str(exc))
                feature_log.append(record)
            candidates.observe(len(response.get("ranked", ())))
            return FastJSONResponse(response)
        finally:
            (by_status.get(status) or requests.labels(str(status))).inc()
            latency.observe(time.perf_counter() - started)

    async def healthz(request: Request) -> Response:
        # A service whose stores can be lost (an online store on Redis) says so with ``ready()``.
        ready = getattr(service, "ready", None)
        ok = ready() if callable(ready) else True
        return JSONResponse({"status": "ok" if ok else "not ready", "system": service.system,
                             "model_version": service.model_version, **service.health()},
                            status_code=200 if ok else 503)

    shared = multiprocess_registry(monitoring.out_dir if monitoring is not None else None)

    async def prometheus(request: Request) -> Response:
        with contextlib.suppress(ValueError):
            version.set(float(service.model_version))
        if shared is not None:  # every process's values, summed (the service's own collectors included)
            return Response(generate_latest(shared), media_type=CONTENT_TYPE_LATEST)
        extra = getattr(service, "metrics", None)  # a service's own collectors (e.g. per-stage timings)
        body = generate_latest(metrics) + (generate_latest(extra) if isinstance(extra, CollectorRegistry) else b"")
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def document() -> dict[str, Any]:
        return openapi_document(service, label_schema if monitoring is not None else None,
                                secured=limits.token is not None)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document())

    async def docs(request: Request) -> Response:
        return HTMLResponse(api_page(document()))

    async def index(request: Request) -> Response:
        links = [("/docs", "the API: routes, fields, answers"), ("/openapi.json", "the OpenAPI 3.1 document"),
                 ("/healthz", "readiness and the model version"), ("/metrics", "Prometheus metrics")]
        if monitoring is not None:
            links.insert(0, ("/dashboard", "monitoring: drift, online metrics, A/B test, alerts"))
        return HTMLResponse(index_page(service.system, service.model_version, links))

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        if status == 405:
            allowed = getattr(exc, "headers", None) or {}
            return JSONResponse({"error": f"{request.method} is not allowed on {request.url.path}",
                                 "allow": allowed.get("Allow", "")}, status_code=405, headers=allowed)
        return JSONResponse(not_found_body(request.url.path, [r.path for r in routes]), status_code=status)

    async def labels(request: Request) -> Response:
        assert monitoring is not None
        body = await _json_body(request, limits, label_decoder, write=True)
        if isinstance(body, Response):
            return body
        # Records of requests answered before these labels reach the feature log first: else a label
        # watermark could close a window before its last records are read, and they would be dropped.
        await run_in_threadpool(feature_log.flush)
        monitoring.labels.append(body["labels"], body.get("watermark_s"))
        return JSONResponse({"accepted": len(body["labels"])})

    async def dashboard(request: Request) -> Response:
        return HTMLResponse(dashboard_html(service.system))

    async def dashboard_data(request: Request) -> Response:
        assert monitoring is not None
        return JSONResponse(read_state(monitoring.out_dir) or {"windows": [], "alerts": [], "ab": None})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            feature_log.close()  # the last records reach the file before the monitor's final pass
            if monitoring is not None:
                monitoring.close()
            service.close()

    routes = [
        Route(service.route, score, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/", index, methods=["GET"]),
    ]
    if isinstance(service, EventIntake):
        routes.append(Route(service.intake_route, _intake_endpoint(service, limits), methods=["POST"]))
    if isinstance(service, LookupRoute):
        routes.append(Route(service.lookup_route, lookup, methods=["GET"]))
    if monitoring is not None:
        routes += [Route(LABELS_ROUTE, labels, methods=["POST"]), Route("/dashboard", dashboard, methods=["GET"]),
                   Route("/dashboard/data", dashboard_data, methods=["GET"])]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_found})
    app.state.admission = admission
    return app


def _intake_endpoint(service: EventIntake, limits: EdgeLimits) -> Callable[[Request], Awaitable[Response]]:
    decoder = BodyDecoder(service.intake_schema, "Events")

    async def intake(request: Request) -> Response:
        body = await _json_body(request, limits, decoder, write=True)
        if isinstance(body, Response):
            return body
        try:
            return FastJSONResponse(service.intake(body))
        except RequestError as exc:
            return JSONResponse({"error": "invalid events", "errors": exc.errors}, status_code=422)
        except MlsdError as exc:
            return _error(409, str(exc))
    return intake


class FastJSONResponse(JSONResponse):
    """A JSON response rendered by orjson (NaN becomes null): several times faster on float-heavy bodies."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


async def _json_body(request: Request, limits: EdgeLimits, decoder: BodyDecoder, *, write: bool,
                     form: tuple[Schema, tuple[str, ...]] | None = None) -> dict[str, Any] | Response:
    """The parsed and checked body, or the 401 / 415 / 408 / 413 / 400 / 422 response that explains why there is none.

    ``write``: the route changes state, so it needs the token. ``form``: the route's schema and upload
    fields, when it also takes ``multipart/form-data`` (:mod:`mlsd.serving.upload`). The checks that
    cost nothing come first: credentials and media type before a byte of the body is read.
    """
    if write and not authorized(request, limits.token):
        return _unauthorized()
    as_form = form is not None and is_form(request.headers.get("content-type", ""))
    if not as_form and not is_json(request):
        return _error(415, "content-type must be application/json" + (" or multipart/form-data" if form else ""))
    try:
        raw = await read_body(request, limits.max_body_bytes, limits.body_timeout_s)
    except BodyRefusedError as exc:
        # a body left unread cannot be followed by another request on this connection
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers={"connection": "close"})
    try:
        if form is not None and as_form:
            try:
                made = await form_body(raw, request.headers, *form, max_part_bytes=limits.max_body_bytes)
            except FormError as exc:
                if exc.field is None:
                    return _error(400, str(exc))
                return JSONResponse({"error": "invalid body", "errors": [{"field": exc.field, "message": str(exc)}]},
                                    status_code=422)
            raw = orjson.dumps(made)
        return decoder.decode(raw)
    except BodyError as exc:
        return _error(400, str(exc))
    except RequestError as exc:
        return JSONResponse({"error": "invalid body", "errors": exc.errors}, status_code=422)


def _unauthorized() -> Response:
    return JSONResponse({"error": "this route needs the service's token: Authorization: Bearer TOKEN"},
                        status_code=401, headers={"www-authenticate": "Bearer"})


def _overloaded() -> Response:
    return JSONResponse({"error": "overloaded: the scoring queue is full, retry shortly"}, status_code=503,
                        headers={"retry-after": "1"})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
