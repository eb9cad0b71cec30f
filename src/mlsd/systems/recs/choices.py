"""What `mlsd run recs` chooses on validation, never on the test split: the co-visitation model's
settings, the BiVAE's weight in that source, and the re-ranking's MMR lambda.

Each is scored by nDCG@10 on the ``label`` ratings (the held-back part of the training data) with
models fitted on the ``fit`` ratings before them; the first of equal scores wins, so each grid leads
with its default (the co-visitation defaults, no blend, the most diversity).
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from mlsd.datasets.movielens import MovieLens
from mlsd.evaluation.topk import intra_list_diversity, topk_metrics
from mlsd.retrieval.candidates import CoVisitation, interaction_matrix, top_k_excluding
from mlsd.retrieval.latent import BiVAEScorer, blend
from mlsd.systems.recs.pipeline import FeatureLookup, Recommender, RecsSettings, Users

# CoVisitation.fit's (regularization, dropout, zero_diagonal) tried on validation; the first is the default.
CO_VISITATION_GRID = tuple((l2, p, zero) for l2 in (300.0, 150.0, 600.0) for p in (0.0, 0.5, 0.67)
                           for zero in (True, False))
# The latent model's weight in the co-visitation source's blend, chosen on validation; 0 (no blend) leads.
LATENT_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
# The re-ranking's relevance weight (1 = no genre diversity), chosen on validation; ties go to more diversity.
MMR_LAMBDAS = (0.8, 0.9, 0.95, 1.0)


def relevant_sets(ratings: pd.DataFrame, rows: np.ndarray) -> list[np.ndarray]:
    groups = ratings.groupby("user").indices
    items = ratings["item"].to_numpy()
    return [np.unique(items[groups[u]]) if u in groups else np.zeros(0, np.int64) for u in rows]


def choose_co_visitation(data: MovieLens, fit: pd.DataFrame, label: pd.DataFrame, k: int = 10,
                         grid: tuple[tuple[float, float, bool], ...] = CO_VISITATION_GRID) -> dict[str, Any]:
    """:meth:`CoVisitation.fit`'s settings with the best nDCG@k of its own order (seen items removed) on
    ``label``'s items when fitted on ``fit``'s: ``{"chosen": kwargs, "valid_ndcg@k": ..., "grid": [...]}``."""
    matrix = interaction_matrix(fit["user"].to_numpy(), fit["item"].to_numpy(), data.n_users, data.n_items)
    seen = matrix > 0
    relevant = relevant_sets(label, np.arange(data.n_users))
    scored = []
    for l2, dropout, zero in grid:
        kwargs: dict[str, Any] = {"regularization": l2, "dropout": dropout, "zero_diagonal": zero}
        top, _ = top_k_excluding(CoVisitation.fit(matrix, **kwargs).scores(seen), seen, k)
        scored.append({**kwargs, f"valid_ndcg@{k}": topk_metrics(top, relevant, k)[f"ndcg@{k}"]})
    best = max(scored, key=lambda row: row[f"valid_ndcg@{k}"])  # the first of equals: the default leads the grid
    return {"chosen": {key: best[key] for key in ("regularization", "dropout", "zero_diagonal")},
            f"valid_ndcg@{k}": best[f"valid_ndcg@{k}"], "grid": scored}


def choose_latent(data: MovieLens, fit: pd.DataFrame, label: pd.DataFrame, co_visitation: dict[str, Any],
                  settings: RecsSettings, seed: int, k: int = 10) -> tuple[dict[str, Any], BiVAEScorer | None]:
    """The BiVAE's weight in the co-visitation source (:data:`LATENT_WEIGHTS`), by the blend's nDCG@k on
    ``label``'s items when both models are fitted on ``fit``'s; also the BiVAE fitted there (None if not tried)."""
    if settings.latent_epochs <= 0:
        return {"chosen": 0.0, "tried": False}, None
    matrix = interaction_matrix(fit["user"].to_numpy(), fit["item"].to_numpy(), data.n_users, data.n_items)
    seen = matrix > 0
    relevant = relevant_sets(label, np.arange(data.n_users))
    started = time.perf_counter()
    latent = BiVAEScorer.fit(matrix, epochs=settings.latent_epochs, seed=seed)
    seconds = time.perf_counter() - started
    covis, latent_scores = CoVisitation.fit(matrix, **co_visitation).scores(seen), latent.scores(seen)
    scored = []
    for weight in LATENT_WEIGHTS:
        blended = blend(covis, latent_scores, weight) if weight > 0 else covis
        top, _ = top_k_excluding(blended, seen, k)
        scored.append({"weight": weight, f"valid_ndcg@{k}": topk_metrics(top, relevant, k)[f"ndcg@{k}"]})
    best = max(scored, key=lambda row: row[f"valid_ndcg@{k}"])  # the first of equals: no blend leads
    return {"chosen": best["weight"], f"valid_ndcg@{k}": best[f"valid_ndcg@{k}"], "grid": scored, "tried": True,
            "model": "BiVAE (cornac BiVAECF, k=100, [200] tanh, Poisson, 0/1 input)",
            "epochs": settings.latent_epochs, "fit_seconds": round(seconds, 1)}, latent


def choose_mmr(model: Recommender, users: Users, lookup: FeatureLookup, relevant: list[np.ndarray],
               k: int = 10) -> dict[str, Any]:
    """The re-ranking's ``mmr_lambda`` (:data:`MMR_LAMBDAS`) with the best nDCG@k of ``model``'s re-ranked lists
    on the held-back ``relevant`` items; the first of equals wins. ``model`` is the ranker's training-phase
    model, without a ranker (the ranker learned on these very items), so the candidates come in
    co-visitation order before freshness and MMR."""
    scored = []
    for weight in MMR_LAMBDAS:
        twin = copy.copy(model)  # every fitted part shared, only the settings differ
        twin.settings = replace(model.settings, mmr_lambda=weight)
        ranked = twin.rank(users, lookup, k=k, rerank=True)
        scored.append({"mmr_lambda": weight, f"valid_ndcg@{k}": topk_metrics(ranked.items, relevant, k)[f"ndcg@{k}"],
                       "valid_diversity": intra_list_diversity(ranked.items, model.genres)})
    best = max(scored, key=lambda row: row[f"valid_ndcg@{k}"])
    return {"chosen": best["mmr_lambda"], f"valid_ndcg@{k}": best[f"valid_ndcg@{k}"], "grid": scored}
