"""Multiclass classification metrics: per class precision, recall, F1 and PR-AUC; macro / weighted F1; confusion.

Classes are integers ``0..k-1`` named by ``classes``; ``proba`` is ``(n, k)``. PR-AUC is one class
against the rest (average precision, :func:`mlsd.evaluation.classification.pr_auc`). Intervals are
percentile bootstraps over the test units (rows), resampled jointly for every figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from mlsd.evaluation.classification import pr_auc


def class_report(y: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None, classes: Sequence[str]
                 ) -> dict[str, Any]:
    """``{class: {precision, recall, f1, pr_auc, support}}`` plus ``macro_f1``, ``weighted_f1``, ``accuracy``,
    ``confusion`` (rows: true class, columns: predicted)."""
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(y, predicted, labels=labels, zero_division=0)
    report: dict[str, Any] = {}
    for j, name in enumerate(classes):
        report[name] = {"precision": float(precision[j]), "recall": float(recall[j]), "f1": float(f1[j]),
                        "pr_auc": pr_auc((y == j).astype(np.float64), proba[:, j]) if proba is not None else None,
                        "support": int(support[j])}
    weights = support / max(support.sum(), 1)
    report.update({"macro_f1": float(f1.mean()), "weighted_f1": float((f1 * weights).sum()),
                   "accuracy": float(np.mean(y == predicted)),
                   "confusion": confusion_matrix(y, predicted, labels=labels).tolist()})
    return report


def f1_of(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> tuple[np.ndarray, float, float]:
    """Per-class F1, macro F1 and weighted F1 (the quantities the intervals resample)."""
    _, _, f1, support = precision_recall_fscore_support(y, predicted, labels=list(range(n_classes)), zero_division=0)
    return f1, float(f1.mean()), float((f1 * support / max(support.sum(), 1)).sum())


def f1_intervals(y: np.ndarray, predicted: np.ndarray, classes: Sequence[str], *, level: float = 0.95,
                 resamples: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """Bootstrap intervals of each class's F1, macro F1 and weighted F1 over resampled rows."""
    rng = np.random.default_rng(seed)
    k = len(classes)
    # per-class F1 from confusion counts, vectorized over resamples (sklearn per draw is ~1 ms each)
    draws = np.empty((resamples, k + 2))
    for r in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        counts = np.zeros((k, k))
        np.add.at(counts, (y[rows], predicted[rows]), 1)
        tp = np.diag(counts)
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.nan_to_num(2 * tp / (counts.sum(axis=0) + counts.sum(axis=1)))
        support = counts.sum(axis=1)
        draws[r] = [*f1, f1.mean(), (f1 * support).sum() / support.sum()]
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, tail, axis=0), np.percentile(draws, 100 - tail, axis=0)
    names = [f"{c}_f1" for c in classes] + ["macro_f1", "weighted_f1"]
    return {name: [float(a), float(b)] for name, a, b in zip(names, low, high, strict=True)}
