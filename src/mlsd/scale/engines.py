"""What ``--engine`` picks for a build: the offline store that joins training frames and the fit engine.

``embedded`` is the default path (DuckDB in this process, the model's own fit) and imports no Ray;
``ray`` joins with :class:`~mlsd.scale.features.RayOfflineStore` and fits with
:class:`~mlsd.scale.train.RayTrainEngine` (Ray Train: PyTorch with DDP, LightGBM data-parallel, LambdaMART
on whole query groups); click-model kinds outside :data:`RAY_KINDS` train embedded under either engine,
and their runs record ``engine=embedded``.
"""

from __future__ import annotations

from mlsd.features.offline import OfflineStore
from mlsd.scale.cluster import check_engine
from mlsd.training.engine import EmbeddedEngine, FitEngine

RAY_KINDS = frozenset({"dcn_v2", "ffm", "logreg", "lgbm"})


def offline_store(engine: str = "embedded") -> OfflineStore:
    """The offline store of ``engine``."""
    if check_engine(engine) == "ray":
        from mlsd.scale.features import RayOfflineStore

        return RayOfflineStore()
    return OfflineStore()


def fit_engine(engine: str, kind: str, workers: int = 2) -> FitEngine | None:
    """The fit engine for a model ``kind`` under ``engine`` (None: the model's own fit)."""
    if check_engine(engine) == "ray" and kind in RAY_KINDS:
        from mlsd.scale.train import RayTrainEngine

        return RayTrainEngine(workers)
    return None


def training_engine(engine: str, workers: int = 2) -> FitEngine:
    """The fit engine of ``engine`` for every model family (the two-tower model and rankers included)."""
    if check_engine(engine) == "ray":
        from mlsd.scale.train import RayTrainEngine

        return RayTrainEngine(workers)
    return EmbeddedEngine()
