"""The friend ranker: LightGBM over graph pair features, saved as LightGBM text plus JSON (no pickle)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PARAMS: dict[str, Any] = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 50,
                          "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1, "verbose": -1,
                          "num_threads": 2}


class LinkRanker:
    """P(u and v become friends) from pair features; trees early-stopped on a validation slice."""

    def __init__(self, features: Sequence[str], booster: Any = None, params: Mapping[str, Any] | None = None) -> None:
        self.features = tuple(features)
        self.booster = booster
        self.params = dict(params or {})

    def _matrix(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.column_stack([np.asarray(columns[f], np.float64) for f in self.features])

    def fit(self, columns: Mapping[str, np.ndarray], labels: np.ndarray, valid: Mapping[str, np.ndarray],
            valid_labels: np.ndarray, seed: int = 0, rounds: int = 500) -> LinkRanker:
        import lightgbm as lgb

        params = {**PARAMS, "seed": seed}
        train = lgb.Dataset(self._matrix(columns), labels, feature_name=list(self.features))
        check = lgb.Dataset(self._matrix(valid), valid_labels, reference=train)
        self.booster = lgb.train(params, train, rounds, valid_sets=[check],
                                 callbacks=[lgb.early_stopping(30, verbose=False)])
        self.params = {"trees": int(self.booster.best_iteration), "seed": seed}
        return self

    def predict(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.booster is None:
            raise ValueError("LinkRanker.predict before fit")
        matrix = self._matrix(columns)
        if not len(matrix):
            return np.zeros(0)
        return np.asarray(self.booster.predict(matrix, num_iteration=self.booster.best_iteration or None))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        assert self.booster is not None
        self.booster.save_model(str(directory / "model.txt"))
        (directory / "ranker.json").write_text(json.dumps({"features": self.features, "params": self.params}))

    @classmethod
    def load(cls, directory: Path) -> LinkRanker:
        import lightgbm as lgb

        meta = json.loads((directory / "ranker.json").read_text())
        return cls(meta["features"], lgb.Booster(model_file=str(directory / "model.txt")), meta["params"])
