"""Each stage of the recommendation pipeline against the others, on the same test users (the ablation table).

Rows: each candidate source alone (its own top-k: two-tower nearest neighbours, co-visitation,
popularity; when a BiVAE is blended into co-visitation, also each of the two models alone), the
union of their candidates in co-visitation order (the pipeline without a learned
ranker), the union ordered by the LambdaMART ranker (trained, whether or not it was promoted), and
the served pipeline (ranker if promoted, then the MMR and freshness re-ranking). Each row has nDCG@k
with its 95% bootstrap interval over users, and its paired bootstrap difference from the served
pipeline: a stage earns its place when the pipeline's lower bound over the best single source is above 0.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from mlsd.evaluation.significance import paired_bootstrap_mean
from mlsd.evaluation.topk import ndcg_per_user
from mlsd.retrieval.candidates import top_k_excluding
from mlsd.systems.recs.pipeline import FeatureLookup, Ranked, Recommender, Users
from mlsd.training.models.lambdamart import LambdaMART

SOURCE_ROWS = ("two_tower", "co_visitation", "popularity")


def ablation(model: Recommender, ranker: LambdaMART, users: Users, lookup: FeatureLookup,
             relevant: list[np.ndarray], served: Ranked, k: int = 10) -> dict[str, Any]:
    """``{stage: {"ndcg@k", "ci95", "pipeline_minus_stage": {"mean", "ci95"}}}`` plus the verdict over single stages.

    ``served``: the pipeline's own ranked lists; only the ordering it did not use is ranked again.
    """
    key = f"ndcg@{k}"
    # The candidates do not depend on the ranker: the served run's are every stage's.
    lists = {f"{source} alone": served.candidates.per_source[source][:, :k] for source in SOURCE_ROWS}
    if model.latent is not None and model.latent_weight > 0:  # the blended source's two halves
        seen = users.seen_matrix(model.n_items)
        lists["co-visitation without BiVAE"] = top_k_excluding(model.covis.scores(seen), seen, k)[0]
        lists["BiVAE alone"] = top_k_excluding(model.latent.scores(seen), seen, k)[0]
    promoted = model.ranker is not None
    unused = replace_ranker(model, None if promoted else ranker).rank(users, lookup, k=k, rerank=False).before_rerank
    lists["union, co-visitation order"] = unused if promoted else served.before_rerank
    lists["union + ranker"] = served.before_rerank if promoted else unused
    lists["served pipeline (+ re-rank)"] = served.items
    per_user = {stage: ndcg_per_user(items, relevant, k) for stage, items in lists.items()}
    pipeline = per_user["served pipeline (+ re-rank)"]
    table: dict[str, Any] = {}
    for stage, values in per_user.items():
        mean, interval = paired_bootstrap_mean(values)
        difference, difference_ci = paired_bootstrap_mean(pipeline - values)
        table[stage] = {key: mean, "ci95": list(interval),
                        "pipeline_minus_stage": {"mean": difference, "ci95": list(difference_ci)}}
    singles = [stage for stage in table if stage.endswith(" alone") or stage == "co-visitation without BiVAE"]
    best = max(singles, key=lambda stage: table[stage][key])
    return {"stages": table, "best_single_stage": best,
            "pipeline_beats_best_single_stage": bool(table[best]["pipeline_minus_stage"]["ci95"][0] > 0),
            "users": len(pipeline)}


def replace_ranker(model: Recommender, ranker: LambdaMART | None) -> Recommender:
    """The same fitted pipeline with another ranker (None: co-visitation order), the original untouched."""
    twin = copy.copy(model)  # every fitted part shared
    twin.ranker = ranker
    return twin
