"""Per-query ranking metrics on the two scales learning-to-rank papers publish.

``letor`` scale: LETOR 4.0's official evaluation (Eval-Score-4.0): NDCG@k with gain ``2^rel - 1``
and discount ``1 / log2(1 + position)``, 0 for a query with fewer than k documents and for a
query without a relevant document; average precision with relevance ``rel > 0``, 0 for a query
with none. ``linear`` scale: NDCG@k with gain ``rel``, truncated at the query's length, 0 for a
query without a relevant document. Ties in the scores keep the documents' original order (the
official script's stable sort). MRR: reciprocal rank of the first relevant document, 0 without one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

KS = (1, 3, 5, 10)


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2))


def query_scores(labels: np.ndarray, scores: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    """Every metric of one query: ``ndcg@k``, ``ndcg@k_letor``, ``map_letor``, ``mrr``."""
    labels = np.asarray(labels, dtype=np.float64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    ranked, ideal = labels[order], np.sort(labels)[::-1]
    n = len(labels)
    disc = _discounts(n)
    relevant = ranked > 0
    out: dict[str, float] = {}
    for k in ks:
        m = min(k, n)
        idcg_lin = float((ideal[:m] * disc[:m]).sum())
        out[f"ndcg@{k}"] = float((ranked[:m] * disc[:m]).sum()) / idcg_lin if idcg_lin > 0 else 0.0
        gain, ideal_gain = 2.0 ** ranked[:m] - 1, 2.0 ** ideal[:m] - 1
        idcg = float((ideal_gain * disc[:m]).sum())
        out[f"ndcg@{k}_letor"] = float((gain * disc[:m]).sum()) / idcg if idcg > 0 and n >= k else 0.0
    hits = np.flatnonzero(relevant)
    if len(hits):
        precision_at_hits = np.arange(1, len(hits) + 1) / (hits + 1)
        out["map_letor"] = float(precision_at_hits.mean())
        out["mrr"] = 1.0 / float(hits[0] + 1)
    else:
        out["map_letor"] = out["mrr"] = 0.0
    return out


def ranking_report(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray,
                   ks: Sequence[int] = KS) -> dict[str, float]:
    """The mean of :func:`query_scores` over queries; ``groups`` are the queries' sizes, in row order."""
    return {name: float(values.mean()) for name, values in query_table(labels, scores, groups, ks).items()}


def query_table(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray,
                ks: Sequence[int] = KS) -> dict[str, np.ndarray]:
    """Every metric of :func:`query_scores`, one value per query in order (for intervals and paired tests)."""
    bounds = np.concatenate([[0], np.cumsum(groups)])
    rows = [query_scores(labels[a:b], scores[a:b], ks) for a, b in itertools.pairwise(bounds)]
    return {name: np.asarray([q[name] for q in rows]) for name in rows[0]} if rows else {}


def per_query(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray, metric: str) -> np.ndarray:
    """One metric per query (for intervals and paired tests)."""
    return query_table(labels, scores, groups).get(metric, np.zeros(0))
