"""Label-based retrieval metrics (image search): a retrieved item is relevant when it shares the query's label.

Per query, over the top ``k``: precision@1, precision@k, AP@k (precision at each relevant rank, divided
by ``min(k, relevant items in the gallery)``) and recall@k as deep metric learning reports it (Recall@K:
at least one relevant item in the top ``k``). Intervals are bootstraps over queries.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlsd.evaluation.significance import paired_bootstrap_mean


def retrieval_per_query(query_labels: np.ndarray, retrieved_labels: np.ndarray, relevant_in_gallery: np.ndarray,
                        k: int = 10) -> dict[str, np.ndarray]:
    """Per-query metrics; ``retrieved_labels`` is ``(queries, >= k)``, best first."""
    hits = (retrieved_labels[:, :k] == query_labels[:, None]).astype(np.float64)
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    denominator = np.maximum(np.minimum(relevant_in_gallery, k), 1)
    return {"precision@1": hits[:, 0], f"precision@{k}": hits.mean(axis=1),
            f"map@{k}": (precision_at * hits).sum(axis=1) / denominator, f"recall@{k}": hits.max(axis=1)}


def retrieval_report(query_labels: np.ndarray, retrieved_labels: np.ndarray, gallery_labels: np.ndarray,
                     k: int = 10) -> dict[str, Any]:
    """Means and 95% bootstrap intervals of :func:`retrieval_per_query`, plus the per-query values."""
    values, counts = np.unique(gallery_labels, return_counts=True)
    count = dict(zip(values.tolist(), counts.tolist(), strict=True))
    relevant = np.asarray([count.get(label, 0) for label in query_labels.tolist()])
    per_query = retrieval_per_query(query_labels, retrieved_labels, relevant, k)
    report: dict[str, Any] = {"queries": len(query_labels), "ci95": {}}
    for name, v in per_query.items():
        mean, ci = paired_bootstrap_mean(v)
        report[name], report["ci95"][name] = mean, list(ci)
    report["per_query"] = per_query
    return report
