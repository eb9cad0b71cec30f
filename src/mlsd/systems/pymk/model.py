"""PYMK's models: a pair classifier (LightGBM binary) and the served friend ranker (a LambdaMART bag).

Both are saved as LightGBM text plus JSON (no pickle). The served ranker reads each candidate's pair
features plus three list features (:func:`list_features`): where the candidate stands in the user's
Adamic–Adar order, and its Adamic–Adar and common-neighbour counts as shares of the user's best.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from mlsd.core.native import native_output_to_log
from mlsd.systems.pymk.data import EgoProfiles
from mlsd.training.models.lambdamart import RankerBag

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
        train = lgb.Dataset(self._matrix(columns), labels, feature_name=list(self.features), params={"verbose": -1})
        check = lgb.Dataset(self._matrix(valid), valid_labels, reference=train, params={"verbose": -1})
        with native_output_to_log("lightgbm"):  # its per-thread warnings bypass verbose=-1
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


LIST_FEATURES = ("adamic_adar_rank", "adamic_adar_share", "common_neighbours_share")


def list_features(users: np.ndarray, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``columns`` plus :data:`LIST_FEATURES`, for candidate rows grouped by user, each user's in Adamic–Adar order.

    The batch precompute passes every user's rows at once; the online path one user's.
    """
    users = np.asarray(users)
    rows = np.arange(len(users))
    starts = np.searchsorted(users, users, side="left") if len(users) else rows
    out = dict(columns)
    out["adamic_adar_rank"] = (rows - starts).astype(np.float64)
    for name, share in (("adamic_adar", "adamic_adar_share"), ("common_neighbours", "common_neighbours_share")):
        values = np.asarray(columns[name], np.float64)
        best = np.zeros(int(users.max()) + 1 if len(users) else 0)
        np.maximum.at(best, users, values)
        out[share] = values / np.maximum(best[users], 1e-12)
    return out


class FriendModel:
    """What the PYMK service serves: a scorer of candidate pairs (the ranker, or Adamic–Adar) + node embeddings.

    :meth:`rank` is the one ranking rule of the batch precompute and of the online path: a user's
    friends of friends cut to the ``cap`` best by Adamic–Adar (ties: lower id), then the top ``k`` by
    score (ties: lower id).
    """

    def __init__(self, kind: str, embeddings: np.ndarray, ranker: RankerBag | None = None, cap: int = 100,
                 profiles: EgoProfiles | None = None) -> None:
        if kind not in ("gbdt", "adamic_adar") or (kind == "gbdt") != (ranker is not None):
            raise ValueError(f"FriendModel kind {kind!r} (gbdt needs a ranker, adamic_adar none)")
        self.kind, self.embeddings, self.ranker, self.cap = kind, np.asarray(embeddings, np.float32), ranker, cap
        self.profiles = profiles  # the ego networks' attributes and circles the ranker reads

    def score(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.ranker is None:
            return np.asarray(columns["adamic_adar"], np.float64)
        return self.ranker.predict(columns)

    def rank(self, friends: np.ndarray, columns: Mapping[str, np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
        """One user's top ``k`` (ids, scores) among ``friends`` (candidates) with their feature ``columns``."""
        if not len(friends):  # nothing to score (the trees would still cost a call each)
            return np.zeros(0, np.int64), np.zeros(0)
        first = np.lexsort((friends, -np.asarray(columns["adamic_adar"])))[: self.cap]
        kept = list_features(np.zeros(len(first), np.int64),
                             {name: np.asarray(values)[first] for name, values in columns.items()})
        scores = self.score(kept)
        order = np.lexsort((friends[first], -scores))[:k]
        return friends[first][order], scores[order]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "embeddings.npy", self.embeddings)
        (directory / "friends.json").write_text(json.dumps({"kind": self.kind, "cap": self.cap,
                                                            "profiles": self.profiles is not None}))
        if self.ranker is not None:
            self.ranker.save(directory / "ranker")
        if self.profiles is not None:  # scipy's npz: arrays only, read back without pickle
            sparse.save_npz(directory / "attributes.npz", self.profiles.attributes)
            sparse.save_npz(directory / "circles.npz", self.profiles.circles)

    @classmethod
    def load(cls, directory: Path) -> FriendModel:
        meta = json.loads((directory / "friends.json").read_text())
        ranker = RankerBag.load(directory / "ranker") if meta["kind"] == "gbdt" else None
        profiles = None
        if meta.get("profiles"):
            profiles = EgoProfiles(sparse.load_npz(directory / "attributes.npz").tocsr(),
                                   sparse.load_npz(directory / "circles.npz").tocsr())
        return cls(meta["kind"], np.load(directory / "embeddings.npy", allow_pickle=False), ranker, int(meta["cap"]),
                   profiles)
