"""Search ranking features from the feature store.

Document-level: the 46 LETOR query-document features, the latest judgment event of each
``(query_id, doc_id)`` pair. Query-level: over every judged document of the query, the document
count and the mean of each feature. The model reads both plus each document's deviation from its
query's mean (:func:`model_inputs`, shared by training and serving, so they cannot skew).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mlsd.events import EventLog
from mlsd.features import Aggregation, AggregationView, Entity, EventLogSource
from mlsd.features.definitions import AnyView
from mlsd.systems.search.data import FEATURES

QUERY = Entity("query", ("query_id",))
PAIR = Entity("query_document", ("query_id", "doc_id"))
DOCUMENT_VIEW = "document_features"
QUERY_VIEW = "query_features"
VIEWS = (DOCUMENT_VIEW, QUERY_VIEW)


def search_views(log: EventLog) -> list[AnyView]:
    source = EventLogSource(log)
    return [
        AggregationView(DOCUMENT_VIEW, (PAIR,), source, tuple(Aggregation("last", f, name=f) for f in FEATURES)),
        AggregationView(QUERY_VIEW, (QUERY,), source, (
            Aggregation("count", name="documents"),
            *(Aggregation("mean", f, name=f"mean_{f}") for f in FEATURES))),
    ]


def document_column(feature: str) -> str:
    return f"{DOCUMENT_VIEW}__{feature}"


def query_column(feature: str) -> str:
    return f"{QUERY_VIEW}__{feature}"


MODEL_FEATURES = (*FEATURES, *(f"mean_{f}" for f in FEATURES), *(f"dev_{f}" for f in FEATURES), "documents")


def model_inputs(documents: np.ndarray, query_means: np.ndarray, documents_per_query: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """The ranker's columns: document features (rows x 46), their query means (rows x 46), deviations, count."""
    columns = {f: documents[:, j] for j, f in enumerate(FEATURES)}
    columns.update({f"mean_{f}": query_means[:, j] for j, f in enumerate(FEATURES)})
    columns.update({f"dev_{f}": documents[:, j] - query_means[:, j] for j, f in enumerate(FEATURES)})
    columns["documents"] = np.asarray(documents_per_query, dtype=np.float64)
    return columns


def frame_inputs(frame: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """:func:`model_inputs` from feature-store columns (a training frame or an online read)."""
    documents = np.column_stack([np.asarray(frame[document_column(f)], dtype=np.float64) for f in FEATURES])
    means = np.column_stack([np.asarray(frame[query_column(f"mean_{f}")], dtype=np.float64) for f in FEATURES])
    return model_inputs(documents, means, np.asarray(frame[query_column("documents")], dtype=np.float64))
