"""Promotion: which registered version becomes ``champion`` and which ``challenger``, in one call.

Candidates are scored on validation data only. The best becomes champion and the runner-up
challenger, except that an incumbent champion named among the candidates keeps its alias unless
the best's paired gain over it (per validation unit: a query, a user) has a bootstrap lower bound
above zero at the given confidence: a new version has to be significantly better to replace it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mlsd.core.errors import MlsdError
from mlsd.registry.mlflow_registry import CHALLENGER, CHAMPION, ModelRegistry


@dataclass(frozen=True)
class Promotion:
    champion: str
    challenger: str | None
    gain: float | None = None  # best minus incumbent, mean over validation units
    lower_bound: float | None = None
    replaced_incumbent: bool = True


def _lower_bound(diff: np.ndarray, confidence: float, resamples: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (resamples, len(diff)))].mean(axis=1)
    return float(np.quantile(means, 1 - confidence))


def promote(registry: ModelRegistry, name: str, candidates: Mapping[str, float | np.ndarray], *,
            higher_is_better: bool = True, incumbent: str | None = None, confidence: float = 0.95,
            resamples: int = 2000, seed: int = 0) -> Promotion:
    """Set ``champion`` / ``challenger`` of ``name`` from validation scores per version (a mean, or per unit)."""
    if not candidates:
        raise MlsdError(f"promote {name}: no candidate versions")
    sign = 1.0 if higher_is_better else -1.0
    ranked = sorted(candidates, key=lambda v: -sign * float(np.mean(candidates[v])))
    best, champion = ranked[0], ranked[0]
    gain = bound = None
    if incumbent is not None and incumbent in candidates and incumbent != best:
        a, b = np.asarray(candidates[best], float), np.asarray(candidates[incumbent], float)
        if a.shape != b.shape or a.ndim != 1:
            raise MlsdError(f"promote {name}: the gate needs per-unit scores of the same units for both versions")
        diff = sign * (a - b)
        gain, bound = float(diff.mean()), _lower_bound(diff, confidence, resamples, seed)
        if bound <= 0:
            champion = incumbent
    challenger = next((v for v in ranked if v != champion), None)
    registry.set_alias(name, CHAMPION, champion)
    if challenger is not None:
        registry.set_alias(name, CHALLENGER, challenger)
    return Promotion(champion, challenger, gain, bound, champion == best)
