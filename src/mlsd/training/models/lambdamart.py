"""LambdaMART: LightGBM's ``lambdarank`` objective, gradient-boosted trees that optimize nDCG per query.

A query is one user's candidate list (rows of a query are contiguous); labels are graded relevance
(0/1 here). Early stopping watches nDCG@k of held-out queries. The saved form is LightGBM's text
model plus a JSON list of feature names, loaded without pickle.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np

from mlsd.core.native import native_output_to_log

if TYPE_CHECKING:
    from mlsd.training.engine import FitEngine

DEFAULTS: dict[str, Any] = {"objective": "lambdarank", "learning_rate": 0.05, "num_leaves": 31,
                            "min_data_in_leaf": 50, "feature_fraction": 0.9, "bagging_fraction": 0.8,
                            "bagging_freq": 1, "lambdarank_truncation_level": 20, "verbose": -1,
                            "num_threads": 0}


@dataclass(frozen=True)
class RankingSet:
    """Ranking rows as a (rows, features) float32 matrix, graded labels and query sizes (rows of a query contiguous)."""

    x: np.ndarray
    labels: np.ndarray
    groups: np.ndarray


def feature_matrix(columns: Mapping[str, np.ndarray], features: Sequence[str]) -> np.ndarray:
    """(rows, features) float32 matrix in the given order (NaN = missing)."""
    return np.ascontiguousarray(np.stack([np.asarray(columns[f], np.float32) for f in features], axis=1))


class LambdaMART:
    """A listwise ranker over named numeric columns."""

    def __init__(self, features: Sequence[str], *, rounds: int = 1000, early_stopping: int = 50, eval_at: int = 10,
                 seed: int = 0, **params: Any) -> None:
        self.features = tuple(features)
        self.rounds, self.early_stopping, self.eval_at = rounds, early_stopping, eval_at
        self.params = {**DEFAULTS, **params, "seed": seed, "eval_at": [eval_at]}
        self.booster: lgb.Booster | None = None

    def fit(self, train: Mapping[str, np.ndarray], labels: np.ndarray, groups: np.ndarray,
            valid: tuple[Mapping[str, np.ndarray], np.ndarray, np.ndarray] | None = None,
            engine: FitEngine | None = None) -> dict[str, Any]:
        """``groups`` are query sizes in row order; ``valid`` is (columns, labels, groups) for early stopping.

        ``engine`` runs the fit (:class:`~mlsd.training.engine.EmbeddedEngine` by default: this process);
        the report records its name and worker count.
        """
        from mlsd.training.engine import EmbeddedEngine

        engine = engine or EmbeddedEngine()
        report = engine.fit_ranker(self, self.ranking_set(train, labels, groups),
                                   self.ranking_set(*valid) if valid is not None else None)
        return {**report, "engine": engine.name, "workers": engine.workers}

    def ranking_set(self, columns: Mapping[str, np.ndarray], labels: np.ndarray, groups: np.ndarray) -> RankingSet:
        """Columns as this ranker's feature matrix, with labels and query sizes."""
        return RankingSet(feature_matrix(columns, self.features), np.asarray(labels, np.float32),
                          np.asarray(groups, np.int64))

    def fit_set(self, train: RankingSet, valid: RankingSet | None = None, **params: Any) -> dict[str, Any]:
        """The fit itself, on matrices; ``params`` override LightGBM parameters (a data-parallel worker's)."""
        started = time.perf_counter()
        data = lgb.Dataset(train.x, train.labels, group=train.groups, feature_name=list(self.features),
                           params={"verbose": -1})
        sets: list[lgb.Dataset] = []
        callbacks: list[Any] = []
        evals: dict[str, dict[str, list[float]]] = {}
        if valid is not None:
            sets = [lgb.Dataset(valid.x, valid.labels, group=valid.groups, reference=data, params={"verbose": -1})]
            callbacks = [lgb.early_stopping(self.early_stopping, verbose=False), lgb.record_evaluation(evals)]
        with native_output_to_log("lightgbm"):  # its per-thread warnings bypass verbose=-1
            self.booster = lgb.train({**self.params, **params}, data, num_boost_round=self.rounds, valid_sets=sets,
                                     valid_names=["valid"][: len(sets)], callbacks=callbacks)
        history = evals.get("valid", {}).get(f"ndcg@{self.eval_at}", [])
        return {"trees": self.booster.best_iteration or self.booster.current_iteration(),
                f"valid_ndcg@{self.eval_at}": max(history) if history else float("nan"),
                "seconds": time.perf_counter() - started, "rows": len(train.labels), "queries": len(train.groups)}

    def predict(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.booster is None:
            raise ValueError("ranker is not fitted")
        return np.asarray(self.booster.predict(feature_matrix(columns, self.features),
                                               num_iteration=self.booster.best_iteration or None))

    def save(self, directory: Path) -> None:
        if self.booster is None:
            raise ValueError("ranker is not fitted")
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / "lambdamart.txt"))
        (directory / "lambdamart.json").write_text(json.dumps({"features": list(self.features)}))

    @classmethod
    def load(cls, directory: Path) -> LambdaMART:
        meta = json.loads((directory / "lambdamart.json").read_text())
        ranker = cls(meta["features"])
        ranker.booster = lgb.Booster(model_file=str(directory / "lambdamart.txt"))
        return ranker


class RankerBag:
    """The mean score of several :class:`LambdaMART` fits (one per seed); saved as their directories.

    Early-stopped fits on a few hundred queries vary from seed to seed; their mean varies less.
    """

    def __init__(self, members: Sequence[LambdaMART], params: Mapping[str, Any] | None = None) -> None:
        self.members = list(members)
        self.params = dict(params or {})

    @property
    def features(self) -> tuple[str, ...]:
        return self.members[0].features

    def predict(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(np.mean([m.predict(columns) for m in self.members], axis=0))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for i, member in enumerate(self.members):
            member.save(directory / f"member-{i}")
        (directory / "bag.json").write_text(json.dumps({"members": len(self.members), "params": self.params}))

    @classmethod
    def load(cls, directory: Path) -> RankerBag:
        meta = json.loads((directory / "bag.json").read_text())
        return cls([LambdaMART.load(directory / f"member-{i}") for i in range(int(meta["members"]))], meta["params"])
