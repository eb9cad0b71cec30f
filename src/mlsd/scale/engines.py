"""What ``--engine`` picks for a build: the offline store that joins training frames and the fit engine.

``embedded`` is the default path (DuckDB in this process, the model's own fit) and imports no Ray;
``ray`` joins with :class:`~mlsd.scale.features.RayOfflineStore` and fits the PyTorch models with
:class:`~mlsd.scale.train.RayTrainEngine`. LightGBM and the other non-PyTorch models train embedded
under either engine, and their runs record ``engine=embedded``.
"""

from __future__ import annotations

from mlsd.features.offline import OfflineStore
from mlsd.scale.cluster import check_engine
from mlsd.training.pipeline import FitEngine

TORCH_KINDS = frozenset({"dcn_v2", "ffm", "logreg"})


def offline_store(engine: str = "embedded") -> OfflineStore:
    """The offline store of ``engine``."""
    if check_engine(engine) == "ray":
        from mlsd.scale.features import RayOfflineStore

        return RayOfflineStore()
    return OfflineStore()


def fit_engine(engine: str, kind: str, workers: int = 2) -> FitEngine | None:
    """The fit engine for a model ``kind`` under ``engine`` (None: the model's own fit)."""
    if check_engine(engine) == "ray" and kind in TORCH_KINDS:
        from mlsd.scale.train import RayTrainEngine

        return RayTrainEngine(workers)
    return None
