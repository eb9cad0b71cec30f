"""Promotion: which registered version becomes ``champion`` and which ``challenger``, in one call.

Candidates are scored on validation data only. A guard comes first: a version that is not better
than a trivial baseline on validation (``baseline``: AUC 0.5, popularity's nDCG), or that the caller
refuses for its own stated reason (``refused``), is never promoted automatically; the refusal is
tagged on the version (``mlsd.promotion_guard``) and returned, and when every candidate is refused
the aliases stay where they were (a person can still ``mlsd promote`` by hand). Among the rest the
best becomes champion and the runner-up challenger, except that an incumbent champion named among
the candidates keeps its alias unless the best's paired gain over it (per validation unit: a query,
a user) has a bootstrap lower bound above zero at the given confidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from mlsd.core.errors import MlsdError
from mlsd.registry.mlflow_registry import CHALLENGER, CHAMPION, GUARD_TAG, ModelRegistry


@dataclass(frozen=True)
class Promotion:
    champion: str | None  # None: every candidate was refused and no alias moved
    challenger: str | None
    gain: float | None = None  # best minus incumbent, mean over validation units
    lower_bound: float | None = None
    replaced_incumbent: bool = True
    refused: Mapping[str, str] = field(default_factory=dict)  # version -> why the guard refused it

    @property
    def chosen(self) -> str:
        """The champion; :class:`MlsdError` naming the refusals when the guard refused every candidate."""
        if self.champion is None:
            reasons = "; ".join(f"v{v}: {why}" for v, why in self.refused.items())
            raise MlsdError(f"no version promoted: {reasons} (promote one by hand: mlsd promote SYSTEM VERSION)")
        return self.champion

    def describe(self) -> str:
        """One line for the run's output: the champion it chose and why, and what the guard refused."""
        refused = "".join(f"; v{v} refused: {why}" for v, why in self.refused.items())
        if self.champion is None:
            return f"no champion promoted (guard){refused}"
        if self.gain is None:
            why = "best on validation"
        elif self.replaced_incumbent:
            why = (f"best on validation, gain {self.gain:+.4f} over the incumbent (95% lower bound "
                   f"{self.lower_bound:+.4f})")
        else:
            why = (f"the incumbent kept: the best's gain {self.gain:+.4f} is not above 0 at 95% "
                   f"(lower bound {self.lower_bound:+.4f})")
        return f"champion v{self.champion} ({why}); challenger {'v' + self.challenger if self.challenger else '-'}" \
               f"{refused}"


def _lower_bound(diff: np.ndarray, confidence: float, resamples: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (resamples, len(diff)))].mean(axis=1)
    return float(np.quantile(means, 1 - confidence))


def promote(registry: ModelRegistry, name: str, candidates: Mapping[str, float | np.ndarray], *,
            higher_is_better: bool = True, incumbent: str | None = None, confidence: float = 0.95,
            resamples: int = 2000, seed: int = 0, baseline: float | None = None,
            baseline_name: str = "the trivial baseline", refused: Mapping[str, str] | None = None) -> Promotion:
    """Set ``champion`` / ``challenger`` of ``name`` from validation scores per version (a mean, or per unit).

    ``baseline``: the same validation metric of a trivial model; a version not strictly better is refused.
    """
    if not candidates:
        raise MlsdError(f"promote {name}: no candidate versions")
    sign = 1.0 if higher_is_better else -1.0
    blocked = dict(refused or {})
    if baseline is not None:
        for version, score in candidates.items():
            mean = float(np.mean(score))
            if not sign * (mean - baseline) > 0:
                blocked.setdefault(version, f"validation score {mean:.4f} is not better than "
                                            f"{baseline_name} ({baseline:.4f})")
    for version in candidates:
        registry.set_version_tag(name, version, GUARD_TAG, blocked.get(version, "passed"))
    ranked = sorted((v for v in candidates if v not in blocked), key=lambda v: -sign * float(np.mean(candidates[v])))
    if not ranked:
        return Promotion(None, None, refused=blocked, replaced_incumbent=False)
    best, champion = ranked[0], ranked[0]
    gain = bound = None
    if incumbent is not None and incumbent in candidates and incumbent not in blocked and incumbent != best:
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
    return Promotion(champion, challenger, gain, bound, champion == best, blocked)
