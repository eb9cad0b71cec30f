"""Where a fit runs: the :class:`FitEngine` protocol and the embedded engine (this process).

A fit engine trains three model families: click models (:meth:`FitEngine.fit`), the two-tower
retrieval model (:meth:`FitEngine.fit_two_tower`) and LambdaMART rankers (:meth:`FitEngine.fit_ranker`).
The embedded engine calls each model's own fit; :class:`mlsd.scale.train.RayTrainEngine` runs the same
loops data-parallel on Ray Train. Callers keep everything else (calibration, registry, lineage) and
record the engine's ``name`` and ``workers``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from mlsd.training.encoding import EncodedBatch
    from mlsd.training.models.base import ClickModel, FitReport
    from mlsd.training.models.lambdamart import LambdaMART, RankingSet
    from mlsd.training.models.two_tower import ItemInputs, TowerConfig, TwoTower, UserInputs


class FitEngine(Protocol):
    """Where a model's fit runs: the embedded engine calls the model's own fit; ``mlsd.scale``'s runs on Ray."""

    name: str
    workers: int

    def fit(self, model: ClickModel, train: EncodedBatch, valid: EncodedBatch) -> FitReport:
        """Fit a click model in place (best epoch's weights or best round's trees); its report."""
        ...

    def fit_two_tower(self, config: TowerConfig, users: UserInputs, items: ItemInputs, pair_users: np.ndarray,
                      pair_items: np.ndarray, user_items: list[np.ndarray]) -> tuple[TwoTower, dict[str, Any]]:
        """:func:`~mlsd.training.models.two_tower.train_two_tower`'s fit: the model and its report."""
        ...

    def fit_ranker(self, model: LambdaMART, train: RankingSet, valid: RankingSet | None) -> dict[str, Any]:
        """Fit a LambdaMART ranker in place on whole query groups; its report."""
        ...


class EmbeddedEngine:
    """Each model's own fit, in this process."""

    name = "embedded"
    workers = 1

    def fit(self, model: ClickModel, train: EncodedBatch, valid: EncodedBatch) -> FitReport:
        return model.fit(train, valid)

    def fit_two_tower(self, config: TowerConfig, users: UserInputs, items: ItemInputs, pair_users: np.ndarray,
                      pair_items: np.ndarray, user_items: list[np.ndarray]) -> tuple[TwoTower, dict[str, Any]]:
        from mlsd.training.models.two_tower import train_two_tower

        return train_two_tower(config, users, items, pair_users, pair_items, user_items)

    def fit_ranker(self, model: LambdaMART, train: RankingSet, valid: RankingSet | None) -> dict[str, Any]:
        return model.fit_set(train, valid)
