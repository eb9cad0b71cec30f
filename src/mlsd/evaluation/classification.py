"""Binary-classification metrics for click models: ranking, probability quality and calibration.

Pure numpy, so the same code scores offline evaluation and online monitoring windows. Each function
takes labels in {0, 1} and predicted probabilities; they are checked against scikit-learn in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-15


def _arrays(y_true: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    q = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != q.shape:
        raise ValueError(f"labels ({y.size}) and predictions ({q.size}) differ in length")
    if y.size == 0:
        raise ValueError("no rows to score")
    return y, q


def roc_auc(y_true: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (ties get half credit, as in the Mann-Whitney U statistic)."""
    y, q = _arrays(y_true, p)
    positives = y.sum()
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(q, kind="mergesort")
    sorted_q = q[order]
    # Average ranks over tied scores.
    ranks = np.empty(y.size, dtype=np.float64)
    _, first, counts = np.unique(sorted_q, return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, counts)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def pr_auc(y_true: np.ndarray, p: np.ndarray) -> float:
    """Average precision: sum over thresholds of precision x recall increment (scikit-learn's definition)."""
    y, q = _arrays(y_true, p)
    positives = y.sum()
    if positives == 0:
        return float("nan")
    order = np.argsort(-q, kind="mergesort")
    y_sorted, q_sorted = y[order], q[order]
    # One point per distinct threshold: the last index of each run of equal scores.
    last = np.r_[np.flatnonzero(np.diff(q_sorted)), y.size - 1]
    tp = np.cumsum(y_sorted)[last]
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_points(y_true: np.ndarray, p: np.ndarray, max_points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at up to ``max_points`` thresholds (for plotting the ROC curve)."""
    y, q = _arrays(y_true, p)
    order = np.argsort(-q, kind="stable")
    y, q = y[order], q[order]
    last = np.r_[np.flatnonzero(np.diff(q)), y.size - 1]  # the last row of each distinct score
    tp, fp = np.cumsum(y)[last], (last + 1) - np.cumsum(y)[last]
    positives, negatives = max(y.sum(), 1.0), max(y.size - y.sum(), 1.0)
    keep = np.unique(np.linspace(0, last.size - 1, min(max_points, last.size)).astype(np.int64))
    return np.r_[0.0, fp[keep] / negatives], np.r_[0.0, tp[keep] / positives]


def log_loss(y_true: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy (natural log), predictions clipped to [1e-15, 1 - 1e-15]."""
    y, q = _arrays(y_true, p)
    q = np.clip(q, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def normalized_entropy(y_true: np.ndarray, p: np.ndarray) -> float:
    """Log loss divided by the entropy of the background rate (He et al. 2014); 1.0 = predicting the mean."""
    y, _ = _arrays(y_true, p)
    rate = float(np.clip(y.mean(), _EPS, 1 - _EPS))
    background = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    return float(log_loss(y_true, p) / background)


def calibration_ratio(y_true: np.ndarray, p: np.ndarray) -> float:
    """Mean prediction divided by the observed rate: 1.0 is calibrated on average, > 1 over-predicts."""
    y, q = _arrays(y_true, p)
    observed = y.mean()
    return float(q.mean() / observed) if observed > 0 else float("inf")


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per bin: mean prediction, observed rate, row count (empty bins dropped)."""

    predicted: np.ndarray
    observed: np.ndarray
    counts: np.ndarray


def reliability_curve(y_true: np.ndarray, p: np.ndarray, bins: int = 10,
                      strategy: str = "quantile") -> ReliabilityCurve:
    """Reliability diagram data; ``quantile`` bins hold equal row counts, ``uniform`` bins split [0, 1]."""
    y, q = _arrays(y_true, p)
    if strategy == "quantile":
        edges = np.unique(np.quantile(q, np.linspace(0, 1, bins + 1)))
    elif strategy == "uniform":
        edges = np.linspace(0, 1, bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', not {strategy!r}")
    index = np.clip(np.searchsorted(edges[1:-1], q, side="right"), 0, len(edges) - 2)
    counts = np.bincount(index, minlength=len(edges) - 1)
    sums_q = np.bincount(index, weights=q, minlength=len(edges) - 1)
    sums_y = np.bincount(index, weights=y, minlength=len(edges) - 1)
    keep = counts > 0
    return ReliabilityCurve(sums_q[keep] / counts[keep], sums_y[keep] / counts[keep], counts[keep])


def expected_calibration_error(y_true: np.ndarray, p: np.ndarray, bins: int = 10,
                               strategy: str = "uniform") -> float:
    """Row-weighted mean |mean prediction - observed rate| over bins."""
    curve = reliability_curve(y_true, p, bins, strategy)
    return float(np.sum(curve.counts * np.abs(curve.predicted - curve.observed)) / curve.counts.sum())


def evaluate(y_true: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Every metric above in one dict (the keys ``mlsd run`` reports)."""
    return {
        "auc": roc_auc(y_true, p),
        "pr_auc": pr_auc(y_true, p),
        "logloss": log_loss(y_true, p),
        "ne": normalized_entropy(y_true, p),
        "calibration": calibration_ratio(y_true, p),
        "ece": expected_calibration_error(y_true, p),
        "rows": float(np.size(y_true)),
        "positives": float(np.sum(y_true)),
    }
