"""What a system provides to be served, and the labels body every monitored service takes.

:class:`ScoringService` is the one thing a system must give :func:`mlsd.serving.app.create_app`;
:class:`EventIntake` and :class:`LookupRoute` are optional extras the edge detects with ``isinstance``
(a POST route for events, a GET route for precomputed answers). The label schemas are the wire
contract of ``POST /v1/labels``: binary outcomes, or graded relevance per shown item for rankers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from mlsd.core.records import FeatureLogRecord
from mlsd.serving.validation import MAX_EVENT_TIME_S, Field, Schema


class ScoringService(Protocol):
    """What a reference system provides to be served.

    Optional: ``label_schema`` (the labels route's body) and ``upload_fields`` (request fields that
    hold a base64 file, also taken as parts of a ``multipart/form-data`` body: :mod:`mlsd.serving.upload`).
    """

    system: str
    route: str
    request_schema: Schema

    @property
    def model_version(self) -> str: ...

    def score(self, body: dict[str, Any], request_id: str) -> tuple[dict[str, Any], FeatureLogRecord]:
        """Return the response body and the feature-log record for one validated request."""
        ...

    def health(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@runtime_checkable
class EventIntake(Protocol):
    """What a service provides to take events over HTTP too (e.g. the ratings its features follow)."""

    intake_route: str
    intake_schema: Schema

    def intake(self, body: dict[str, Any]) -> dict[str, Any]:
        """Take one validated batch; raise RequestError (422) for bad events, MlsdError (409) if it cannot."""
        ...


@runtime_checkable
class LookupRoute(Protocol):
    """What a service provides to answer a GET too (e.g. ``/v1/pymk/{user_id:int}?k=5``, a precomputed list).

    The path and query parameters become a request body, checked against ``request_schema`` and scored
    exactly as a POST to the scoring route (admission, feature log, metrics).
    """

    lookup_route: str  # a Starlette path with typed parameters

    def lookup_body(self, path: Mapping[str, Any], query: Mapping[str, str]) -> dict[str, Any]:
        """The scoring body of a GET; raise RequestError (422) naming a bad query parameter."""
        ...


LABELS_ROUTE = "/v1/labels"
MAX_LABELS = 10_000
LABEL_SCHEMA: Schema = {
    "labels": Field("array", max_items=MAX_LABELS, items={
        "request_id": Field("string", description="the scored request's id"),
        "label": Field("number", minimum=0, maximum=1, description="1 clicked / converted, 0 not")}),
    "watermark_s": Field("number", required=False, minimum=0, maximum=MAX_EVENT_TIME_S + 2 * 365 * 86_400,
                         description="every label of requests up to this event time has now been sent"),
}
# Ranking services take graded relevance per shown item: {"request_id", "item", "label"}.
RANKING_LABEL_SCHEMA: Schema = {
    "labels": Field("array", max_items=MAX_LABELS, items={
        "request_id": Field("string", description="the scored request's id"),
        "item": Field("string", description="a shown item's id"),
        "label": Field("number", minimum=0, maximum=100, description="graded relevance (0: not relevant)")}),
    "watermark_s": LABEL_SCHEMA["watermark_s"],
}


