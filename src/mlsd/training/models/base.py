"""The one interface every click model implements, and the catalogue that loads saved ones.

Saved models are a directory of safe files (JSON, LightGBM text, PyTorch state dicts read with
``weights_only=True``); :func:`load_model` only ever instantiates kinds listed in ``MODEL_KINDS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from mlsd.training.encoding import EncodedBatch, FeatureEncoder


@dataclass
class FitReport:
    """What a fit did: rows seen, epochs or trees, best validation loss, seconds."""

    rows: int
    iterations: int
    best_valid_logloss: float
    seconds: float
    history: list[float] = field(default_factory=list)


class ClickModel(Protocol):
    """A binary classifier over :class:`EncodedBatch` inputs."""

    kind: ClassVar[str]

    def fit(self, train: EncodedBatch, valid: EncodedBatch) -> FitReport: ...

    def predict(self, batch: EncodedBatch) -> np.ndarray: ...

    def save(self, directory: Path) -> None: ...

    @classmethod
    def load(cls, directory: Path, encoder: FeatureEncoder) -> ClickModel: ...

    def params(self) -> dict[str, Any]: ...

    def refit_params(self, report: FitReport) -> dict[str, Any]: ...


def model_kinds() -> dict[str, type[ClickModel]]:
    """Every model kind by name (imported lazily: torch and LightGBM are heavy)."""
    from mlsd.training.models.gbdt import LightGBMModel
    from mlsd.training.models.neural import DCNv2Model, FFMModel, LogisticModel

    kinds: list[type[ClickModel]] = [LogisticModel, LightGBMModel, DCNv2Model, FFMModel]
    return {k.kind: k for k in kinds}


def make_model(kind: str, encoder: FeatureEncoder, seed: int = 0, **params: Any) -> ClickModel:
    """A fresh, unfitted model of one kind."""
    kinds = model_kinds()
    if kind not in kinds:
        raise ValueError(f"unknown model kind {kind!r}; known: {sorted(kinds)}")
    return kinds[kind](encoder, seed=seed, **params)  # type: ignore[call-arg]
