"""LightGBM gradient-boosted trees on raw numeric features and hashed categorical ids."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np

from mlsd.core.native import native_output_to_log
from mlsd.training.encoding import EncodedBatch, FeatureEncoder
from mlsd.training.models.base import FitReport

DEFAULTS: dict[str, Any] = {
    "objective": "binary", "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 20,
    "feature_fraction": 0.8, "bagging_fraction": 0.9, "bagging_freq": 1, "lambda_l2": 1.0,
    "max_cat_to_onehot": 4, "cat_smooth": 10.0, "min_data_per_group": 50, "max_bin": 255,
    "num_threads": 2, "verbose": -1,
}


def matrix(batch: EncodedBatch) -> np.ndarray:
    """LightGBM's input: raw numeric columns then categorical bucket ids (as float, NaN kept)."""
    return np.hstack([batch.numeric.astype(np.float32), batch.categorical.astype(np.float32)])


class LightGBMModel:
    """GBDT with early stopping on the validation period's log loss."""

    kind: ClassVar[str] = "lgbm"

    def __init__(self, encoder: FeatureEncoder, seed: int = 0, rounds: int = 2000, early_stopping: int = 100,
                 **params: Any) -> None:
        self.encoder = encoder
        self.seed = seed
        self.rounds = rounds
        self.early_stopping = early_stopping
        self.lgb_params = {**DEFAULTS, **params, "seed": seed}
        self.booster: lgb.Booster | None = None

    def _categorical_index(self) -> list[int]:
        start = len(self.encoder.numeric)
        return list(range(start, start + len(self.encoder.categorical)))

    def fit(self, train: EncodedBatch, valid: EncodedBatch) -> FitReport:
        return self.fit_matrix(matrix(train), train.labels, matrix(valid), valid.labels)

    def fit_matrix(self, x: np.ndarray, y: np.ndarray | None, valid_x: np.ndarray, valid_y: np.ndarray | None,
                   **extra: Any) -> FitReport:
        """Boost on ``matrix()`` rows; ``extra`` parameters join the model's (a distributed run's network)."""
        started = time.perf_counter()
        names = list(self.encoder.columns)
        data = lgb.Dataset(x, y, feature_name=names, categorical_feature=self._categorical_index(),
                           free_raw_data=True, params={"verbose": -1})
        evals: dict[str, dict[str, list[float]]] = {}
        callbacks = [lgb.record_evaluation(evals)]
        valid_sets = []
        if len(valid_x) and self.early_stopping:
            valid_sets = [lgb.Dataset(valid_x, valid_y, reference=data, params={"verbose": -1})]
            callbacks.append(lgb.early_stopping(self.early_stopping, verbose=False))
        with native_output_to_log("lightgbm"):  # its per-thread warnings bypass verbose=-1
            self.booster = lgb.train({**self.lgb_params, **extra, "metric": "binary_logloss"}, data,
                                     num_boost_round=self.rounds, valid_sets=valid_sets,
                                     valid_names=["valid"][:len(valid_sets)],
                                     callbacks=callbacks)
        history = evals.get("valid", {}).get("binary_logloss", [])
        best = self.booster.best_iteration or self.booster.current_iteration()
        return FitReport(len(x), best, min(history) if history else float("nan"),
                         time.perf_counter() - started, history)

    def predict(self, batch: EncodedBatch) -> np.ndarray:
        if self.booster is None:
            raise ValueError("model is not fitted")
        # Small (serving) batches on one thread: waking an OpenMP team costs more than it saves and
        # its spinning threads steal the cores other requests need.
        threads = 1 if len(batch) < 10_000 else int(self.lgb_params.get("num_threads", 0))
        return np.asarray(self.booster.predict(matrix(batch), num_iteration=self.booster.best_iteration or None,
                                               num_threads=threads), dtype=np.float64)

    def save(self, directory: Path) -> None:
        if self.booster is None:
            raise ValueError("model is not fitted")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "model.txt").write_text(self.booster.model_to_string())
        (directory / "params.json").write_text(json.dumps({"seed": self.seed, "rounds": self.rounds,
                                                           "early_stopping": self.early_stopping}))

    @classmethod
    def load(cls, directory: Path, encoder: FeatureEncoder) -> LightGBMModel:
        params = json.loads((directory / "params.json").read_text())
        model = cls(encoder, **params)
        model.booster = lgb.Booster(model_str=(directory / "model.txt").read_text())
        return model

    def refit_params(self, report: FitReport) -> dict[str, Any]:
        """Parameters that grow exactly the early-stopped number of trees."""
        params = {k: v for k, v in self.lgb_params.items() if k not in DEFAULTS or v != DEFAULTS[k]}
        return {**params, "rounds": max(report.iterations, 1), "early_stopping": 0}

    def params(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "early_stopping": self.early_stopping, **self.lgb_params}
