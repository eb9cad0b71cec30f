"""Top-k recommendation metrics, defined as Microsoft Recommenders defines them (binary relevance).

For a user with relevant set R and list L (the first k recommendations):
- precision@k = |L ∩ R| / k; recall@k = |L ∩ R| / |R|;
- nDCG@k = Σ_{i in L, hit} 1/log2(rank+1) over the ideal Σ_{r ≤ min(|R|, k)} 1/log2(r+1);
- MAP (their ``map_at_k``) = Σ_{hits at rank r} (hits up to r / r) / |R|.
Each is averaged over users with at least one relevant item. Coverage and diversity describe the lists.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlsd.evaluation.significance import paired_bootstrap_mean


def hit_matrix(recommended: np.ndarray, relevant: Sequence[np.ndarray]) -> np.ndarray:
    """Boolean (users, k): whether each recommended item (``-1`` = empty slot) is relevant to its user."""
    hits = np.zeros(recommended.shape, dtype=bool)
    for u, items in enumerate(relevant):
        if len(items):
            hits[u] = np.isin(recommended[u], items) & (recommended[u] >= 0)
    return hits


def topk_metrics(recommended: np.ndarray, relevant: Sequence[np.ndarray], k: int = 10) -> dict[str, float]:
    """nDCG@k, precision@k, recall@k and MAP over users that have relevant items."""
    return {name: float(np.mean(values)) for name, values in topk_per_user(recommended, relevant, k).items()}


def topk_per_user(recommended: np.ndarray, relevant: Sequence[np.ndarray], k: int = 10) -> dict[str, np.ndarray]:
    """Each metric of :func:`topk_metrics` per user with relevant items (the units a bootstrap resamples)."""
    if recommended.shape[0] != len(relevant):
        raise ValueError(f"{recommended.shape[0]} recommendation lists for {len(relevant)} users")
    hits, n_relevant = _hits(recommended, relevant, k)
    ranks = np.arange(1, k + 1)
    precision_at_hits = np.cumsum(hits, axis=1) / ranks[: hits.shape[1]] * hits
    return {f"ndcg@{k}": _ndcg(hits, n_relevant, k), f"precision@{k}": hits.sum(1) / k,
            f"recall@{k}": hits.sum(1) / n_relevant, "map": precision_at_hits.sum(1) / n_relevant}


def topk_intervals(recommended: np.ndarray, relevant: Sequence[np.ndarray], k: int = 10, *, resamples: int = 2000,
                   seed: int = 0) -> dict[str, list[float]]:
    """95% bootstrap interval of each metric of :func:`topk_metrics`, over users."""
    return {name: list(paired_bootstrap_mean(values, resamples=resamples, seed=seed)[1])
            for name, values in topk_per_user(recommended, relevant, k).items()}


def ndcg_per_user(recommended: np.ndarray, relevant: Sequence[np.ndarray], k: int = 10) -> np.ndarray:
    """nDCG@k of each user that has relevant items (in order), for paired comparisons of two rankers."""
    return _ndcg(*_hits(recommended, relevant, k), k)


def _hits(recommended: np.ndarray, relevant: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hit matrix of the top ``k`` and relevant-set sizes, for the users that have relevant items."""
    n_relevant = np.array([len(r) for r in relevant])
    keep = n_relevant > 0
    return hit_matrix(recommended[:, :k], relevant)[keep], n_relevant[keep]


def _ndcg(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.minimum(n_relevant, k) - 1]
    return np.asarray((hits * discount[: hits.shape[1]]).sum(1) / ideal)


def candidate_recall(candidates: np.ndarray, relevant: Sequence[np.ndarray]) -> float:
    """Share of all relevant (user, item) pairs found among each user's candidates (micro average)."""
    found = hit_matrix(candidates, relevant).sum()
    total = sum(len(r) for r in relevant)
    return float(found / total) if total else float("nan")


def catalogue_coverage(recommended: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    return float(len(np.unique(recommended[recommended >= 0])) / n_items)


def intra_list_diversity(recommended: np.ndarray, genres: np.ndarray) -> float:
    """Mean pairwise genre dissimilarity (1 - cosine of genre vectors) within each list, averaged over lists."""
    values = []
    norms = genres / np.maximum(np.linalg.norm(genres, axis=1, keepdims=True), 1e-12)
    for row in recommended:
        items = row[row >= 0]
        if len(items) < 2:
            continue
        vectors = norms[items]
        similarity = vectors @ vectors.T
        n = len(items)
        values.append(1.0 - (similarity.sum() - np.trace(similarity)) / (n * (n - 1)))
    return float(np.mean(values)) if values else float("nan")
