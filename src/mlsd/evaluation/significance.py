"""Significance of differences: between A/B arms, and between two models on the same units.

Rates are compared with the two-proportion z-test (pooled variance); metrics without a closed-form
variance (normalized entropy, AUC) get percentile-bootstrap intervals of the difference, resampling
each arm's rows independently; paired per-unit differences (users, queries) get a bootstrap of
their mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class ZTest:
    """Two-proportion z-test of treatment vs control (difference = treatment - control)."""

    rate_control: float
    rate_treatment: float
    difference: float
    z: float
    p_value: float
    ci95: tuple[float, float]


def two_proportion_ztest(successes_control: int, n_control: int, successes_treatment: int,
                         n_treatment: int) -> ZTest:
    """Pooled two-sided z-test; the interval uses the unpooled standard error."""
    if min(n_control, n_treatment) <= 0:
        raise ValueError("both arms need at least one row")
    p0, p1 = successes_control / n_control, successes_treatment / n_treatment
    pooled = (successes_control + successes_treatment) / (n_control + n_treatment)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_control + 1 / n_treatment))
    z = (p1 - p0) / se if se > 0 else 0.0
    p_value = float(2 * stats.norm.sf(abs(z)))
    se_diff = math.sqrt(p0 * (1 - p0) / n_control + p1 * (1 - p1) / n_treatment)
    half = 1.959963984540054 * se_diff
    return ZTest(p0, p1, p1 - p0, z, p_value, (p1 - p0 - half, p1 - p0 + half))


def bootstrap_difference(metric: Callable[[np.ndarray, np.ndarray], float],
                         control: tuple[np.ndarray, np.ndarray], treatment: tuple[np.ndarray, np.ndarray], *,
                         resamples: int = 200, seed: int = 0) -> tuple[float, tuple[float, float]]:
    """``metric(treatment) - metric(control)`` with a percentile-bootstrap 95% interval.

    Each arm is ``(labels, predictions)``; resamples where the metric is undefined (NaN, e.g. AUC
    with one class) are dropped.
    """
    rng = np.random.default_rng(seed)
    (y0, p0), (y1, p1) = control, treatment
    point = metric(y1, p1) - metric(y0, p0)
    draws = []
    for _ in range(resamples):
        i0 = rng.integers(0, len(y0), len(y0))
        i1 = rng.integers(0, len(y1), len(y1))
        draws.append(metric(y1[i1], p1[i1]) - metric(y0[i0], p0[i0]))
    finite = np.asarray(draws)[np.isfinite(draws)]
    if finite.size == 0:
        return point, (float("nan"), float("nan"))
    return point, (float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5)))


def bootstrap_metric(metric: Callable[[np.ndarray, np.ndarray], float], labels: np.ndarray, scores: np.ndarray, *,
                     level: float = 0.95, resamples: int = 200, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``metric(labels, scores)`` (AUC, AP) over resampled rows.

    Resamples where the metric is undefined (NaN, e.g. one class only) are dropped.
    """
    rng = np.random.default_rng(seed)
    draws = np.array([metric(labels[i], scores[i]) for i in (rng.integers(0, len(labels), len(labels))
                                                              for _ in range(resamples))], float)
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    return float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))


def paired_bootstrap_mean(differences: np.ndarray, *, level: float = 0.95, resamples: int = 2000,
                          seed: int = 0) -> tuple[float, tuple[float, float]]:
    """Mean of paired differences (one per unit, e.g. per-user nDCG of B minus A) and its bootstrap interval.

    Units are resampled with replacement; the interval is the central ``level`` percentile range of
    the resampled means. A one-sided test at 1 - (1 - level) / 2 asks whether its lower end is above 0.
    """
    values = np.asarray(differences, dtype=np.float64)
    if values.size == 0:
        return float("nan"), (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (resamples, values.size))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    return float(values.mean()), (float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)))


def cluster_bootstrap_mean(values: np.ndarray, clusters: np.ndarray, *, level: float = 0.95, resamples: int = 2000,
                           seed: int = 0) -> tuple[float, tuple[float, float]]:
    """Mean of per-unit values and its bootstrap interval when units come in clusters (prefixes of a session).

    Whole clusters are resampled with replacement (units of one cluster are not independent); each
    resample's mean is over the units of the drawn clusters.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), (float("nan"), float("nan"))
    _, owner = np.unique(np.asarray(clusters), return_inverse=True)
    sums = np.bincount(owner, weights=values)
    sizes = np.bincount(owner).astype(np.float64)
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(sums), (resamples, len(sums)))
    means = sums[drawn].sum(axis=1) / sizes[drawn].sum(axis=1)
    tail = 100 * (1 - level) / 2
    return float(values.mean()), (float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)))
