"""The search ranking service: a query and its candidate documents -> documents ranked by the champion.

A document is named by ``doc_id``; its 46 query-document features come with it (``features``) or,
for a judged pair, from the online store. Query-level features come from the online store for a
known query, else from the request's own documents (the same count and means the feature view
computes). Each response is logged with the document ids, the monitored features and the scores.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from mlsd.core.errors import UnknownEntityError
from mlsd.core.records import FeatureLogRecord
from mlsd.events import EventLog
from mlsd.monitoring.drift import DriftThresholds
from mlsd.monitoring.online import MonitorConfig
from mlsd.monitoring.profile import DatasetProfile
from mlsd.registry import CHAMPION, ModelRegistry
from mlsd.serving.models import Arms, ModelHolder
from mlsd.serving.protocols import RANKING_LABEL_SCHEMA
from mlsd.serving.validation import Field, Schema, event_time
from mlsd.systems.search.build import MODEL_NAME, MONITORED, PROFILE_FILE
from mlsd.systems.search.data import FEATURES, JUDGMENT_SCHEMA
from mlsd.systems.search.features import (
    DOCUMENT_VIEW,
    QUERY_VIEW,
    document_column,
    model_inputs,
    query_column,
    search_views,
)

MAX_DOCUMENTS = 1000
REQUEST_SCHEMA: Schema = {
    "request_id": Field("string", required=False, description="client id; generated when absent"),
    "timestamp": event_time(),
    "query_id": Field("integer", minimum=0, maximum=2**31 - 1, description="the query (hashed to arms in A/B tests)"),
    "documents": Field("array", min_items=1, max_items=MAX_DOCUMENTS, items={
        "doc_id": Field("string", description="the document"),
        "features": Field("object", required=False, description="its 46 LETOR features (else: the online store)",
                          properties={f: Field("number") for f in FEATURES}),
    }),
}


class SearchService:
    """Ranks documents with the champion of ``search-mq2008`` (the challenger for a hashed share of queries)."""

    system = "search"
    route = "/v1/search/rank"
    request_schema: Schema = REQUEST_SCHEMA
    label_schema: Schema = RANKING_LABEL_SCHEMA

    def __init__(self, home: Path, *, ab_share: float = 0.0, experiment: str = "search-ab", window_s: float = 3600.0,
                 label_delay_s: float = 600.0, thresholds: DriftThresholds | None = None,
                 poll_interval: float = 10.0) -> None:
        from mlsd.system import Workspace

        self.ws = Workspace(home)
        self.monitor_config = MonitorConfig(window_s=window_s, label_delay_s=label_delay_s,
                                            thresholds=thresholds or DriftThresholds(), task="ranking")
        self.log = EventLog(self.ws.events("judgments"), JUDGMENT_SCHEMA, writer=False)
        self.store = self.ws.feature_store(search_views(self.log))
        self.registry = ModelRegistry(self.ws.home)
        self.models = ModelHolder(self.registry, MODEL_NAME, CHAMPION, poll_interval)
        self.arms = Arms(self.models, ab_share, experiment, poll_interval)

    @property
    def model_version(self) -> str:
        return self.models.version

    def reference_profile(self) -> DatasetProfile:
        return DatasetProfile.from_dict(self.registry.artifact_json(MODEL_NAME, self.models.version, PROFILE_FILE))

    def inputs(self, body: dict[str, Any]) -> dict[str, np.ndarray]:
        documents = body["documents"]
        n = len(documents)
        query = int(body["query_id"])
        matrix = np.full((n, len(FEATURES)), np.nan)
        given = [i for i, d in enumerate(documents) if d.get("features") is not None]
        for i in given:
            matrix[i] = [documents[i]["features"][f] for f in FEATURES]
        missing = [i for i in range(n) if documents[i].get("features") is None]
        if missing:
            stored = self.store.online_features([DOCUMENT_VIEW], {
                "query_id": [query] * len(missing), "doc_id": [documents[i]["doc_id"] for i in missing]})
            values = np.column_stack([stored[document_column(f)] for f in FEATURES])
            unknown = [missing[j] for j in np.flatnonzero(np.isnan(values).all(axis=1))]
            if unknown:
                doc = documents[unknown[0]]["doc_id"]
                raise UnknownEntityError(f"documents[{unknown[0]}].features: required for a document the store "
                                         f"does not know (query {query}, doc {doc!r})")
            matrix[missing] = values
        known = self.store.online_features([QUERY_VIEW], {"query_id": [query]})
        count = float(known[query_column("documents")][0]) if not np.isnan(known[query_column("documents")][0]) else 0
        if count > 0:
            means = np.column_stack([known[query_column(f"mean_{f}")] for f in FEATURES]).repeat(n, axis=0)
        else:  # a query the store has not seen: its features from the documents at hand
            means, count = matrix.mean(axis=0, keepdims=True).repeat(n, axis=0), float(n)
        return model_inputs(matrix, means, np.full(n, count))

    def score(self, body: dict[str, Any], request_id: str) -> tuple[dict[str, Any], FeatureLogRecord]:
        columns = self.inputs(body)
        arm, model, version = self.arms.pick(body["query_id"])
        scores = np.asarray(model.predict(columns))
        order = np.argsort(-scores, kind="stable")
        docs = [body["documents"][i]["doc_id"] for i in order.tolist()]
        stamp = float(body["timestamp"]) if body.get("timestamp") is not None else time.time()
        # the log keeps the documents in the order shown, with their features and scores
        record = FeatureLogRecord(request_id=request_id, at_us=round(stamp * 1e6), model_version=version, arm=arm,
                                  entities={"query_id": [body["query_id"]] * len(docs)}, items=list(docs),
                                  features={c: columns[c][order].tolist() for c in MONITORED},
                                  predictions=scores[order].tolist())
        ranked = [{"doc_id": doc, "score": float(score)} for doc, score in zip(docs, scores[order].tolist(),
                                                                               strict=True)]
        return {"request_id": request_id, "model_version": version, "arm": arm, "ranked": ranked}, record

    def health(self) -> dict[str, Any]:
        return {"model_swaps": self.models.swaps, "ab_share": self.arms.share}

    def close(self) -> None:
        self.arms.close()
        self.store.online.close()
        self.log.close()
