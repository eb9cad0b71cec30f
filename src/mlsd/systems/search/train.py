"""Search ranking models per fold: LambdaMART and a pointwise baseline, chosen on validation only.

Each fold builds its three parts from one point-in-time training frame. For each model family a
small grid of LightGBM settings is fitted on the training parts, each early-stopped on the
validation part; the setting with the best mean validation nDCG@10 (linear gain) wins, and the
final model is a bag of ``seeds`` such fits (different bagging seeds, scores averaged), which cuts
the variance of single early-stopped fits on 470 training queries. The test part is scored once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlsd.evaluation.query_ranking import per_query, query_table, ranking_report
from mlsd.systems.search.features import MODEL_FEATURES
from mlsd.training.models.lambdamart import LambdaMART, RankerBag

Progress = Callable[[str], None]
LAMBDAMART_GRID: tuple[dict[str, Any], ...] = (
    {"num_leaves": 7, "min_data_in_leaf": 50},
    {"num_leaves": 7, "min_data_in_leaf": 20},
    {"num_leaves": 15, "min_data_in_leaf": 50},
)
POINTWISE = {"objective": "regression", "metric": "ndcg", "first_metric_only": True}


@dataclass
class SearchSettings:
    seeds: int = 5
    learning_rate: float = 0.05
    grid: tuple[dict[str, Any], ...] = LAMBDAMART_GRID
    threads: int = 2


@dataclass
class Split:
    """Rows of one part: model columns, labels and query sizes (rows of a query contiguous)."""

    columns: dict[str, np.ndarray]
    labels: np.ndarray
    groups: np.ndarray
    query_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def as_tuple(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        return self.columns, self.labels, self.groups


def fit_bag(train: Split, valid: Split, params: Mapping[str, Any], settings: SearchSettings) -> tuple[RankerBag, int]:
    """``settings.seeds`` early-stopped fits; returns the bag and its members' median tree count."""
    members, trees = [], []
    for seed in range(settings.seeds):
        model = LambdaMART(MODEL_FEATURES, seed=seed, learning_rate=settings.learning_rate,
                           feature_fraction=0.8, num_threads=settings.threads, **params)
        report = model.fit(*train.as_tuple(), valid=valid.as_tuple())
        members.append(model)
        trees.append(int(report["trees"]))
    return RankerBag(members, params), int(np.median(trees))


def select(train: Split, valid: Split, family: str, settings: SearchSettings, say: Progress
           ) -> tuple[RankerBag, dict[str, Any]]:
    """The family's grid point with the best mean validation nDCG@10; its bag and the selection record."""
    grid = [{**p} for p in settings.grid] if family == "lambdamart" else [{**p, **POINTWISE} for p in settings.grid]
    best: tuple[float, RankerBag, dict[str, Any], int] | None = None
    tried = []
    for params in grid:
        bag, trees = fit_bag(train, valid, params, settings)
        score = ranking_report(valid.labels, bag.predict(valid.columns), valid.groups)["ndcg@10"]
        tried.append({"params": {k: v for k, v in params.items() if k not in POINTWISE}, "valid_ndcg@10": score,
                      "trees": trees})
        if best is None or score > best[0]:
            best = (score, bag, params, trees)
    assert best is not None
    chosen = {k: v for k, v in best[2].items() if k not in POINTWISE}
    say(f"    {family}: valid nDCG@10 {best[0]:.4f} with {chosen}")
    return best[1], {"valid_ndcg@10": best[0], "trees": best[3], "grid": tried}


def evaluate(model: RankerBag, split: Split) -> dict[str, float]:
    return ranking_report(split.labels, model.predict(split.columns), split.groups)


def evaluate_queries(model: RankerBag, split: Split) -> dict[str, np.ndarray]:
    """Every metric per query of ``split`` (for intervals over queries and paired comparisons)."""
    return query_table(split.labels, model.predict(split.columns), split.groups)


def per_query_ndcg(model: RankerBag, split: Split) -> np.ndarray:
    return per_query(split.labels, model.predict(split.columns), split.groups, "ndcg@10")
