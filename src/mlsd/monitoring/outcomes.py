"""What a monitor window's labels add up to, and how a replay's alerts score against an injected drift.

Per window: binary online metrics (rate, calibration, NE, AUC, precision / recall at the served
threshold) and ranking ones (nDCG@k, hit@k, MRR of the shown lists). Per replay: detection delay and
false alarms (:func:`drift_outcome`). The monitor's state machine is :mod:`mlsd.monitoring.online`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mlsd.evaluation.classification import calibration_ratio, normalized_entropy, roc_auc


def ranking_outcome(shown: tuple[Any, ...], relevance: Mapping[Any, float] | None,
                    k: int) -> tuple[float, float, float]:
    """nDCG@k (linear gain; 0 without a relevant item), hit@k and reciprocal rank of one shown list."""
    relevance = relevance or {}
    gains = np.asarray([relevance.get(item, 0.0) for item in shown], dtype=np.float64)
    if not (gains > 0).any():
        return 0.0, 0.0, 0.0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    top = gains[:k]
    ideal = np.sort(np.asarray(list(relevance.values()), dtype=np.float64))[::-1][:k]
    ndcg = float((top * discounts[:len(top)]).sum() / (ideal * discounts[:len(ideal)]).sum())
    first = int(np.flatnonzero(gains > 0)[0])
    return ndcg, float((top > 0).any()), 1.0 / (first + 1)


def ranking_metrics(outcomes: np.ndarray, k: int) -> dict[str, float | int | None]:
    """Rows and the means of per-request nDCG@k, hit@k and reciprocal rank (``outcomes``: rows x 3)."""
    if len(outcomes) == 0:
        return {"rows": 0, f"ndcg@{k}": None, f"hit@{k}": None, "mrr": None}
    means = outcomes.mean(axis=0)
    return {"rows": len(outcomes), f"ndcg@{k}": float(means[0]), f"hit@{k}": float(means[1]), "mrr": float(means[2])}


def online_metrics(y: np.ndarray, p: np.ndarray, threshold: float | None = None) -> dict[str, float | int | None]:
    """Rows, observed rate, mean prediction, calibration ratio, NE and AUC (None where undefined); with a
    decision ``threshold``, the precision and recall of acting on ``p >= threshold``."""
    rows = len(y)
    if rows == 0:
        empty = {"rows": 0, "rate": None, "mean_prediction": None, "calibration": None, "ne": None, "auc": None}
        return {**empty, **({"precision": None, "recall": None} if threshold is not None else {})}
    positives = float(y.sum())
    defined = 0 < positives < rows
    metrics: dict[str, float | int | None] = {
        "rows": rows, "positives": int(positives), "rate": positives / rows, "mean_prediction": float(p.mean()),
        "calibration": calibration_ratio(y, p) if positives else None,
        "ne": normalized_entropy(y, p) if defined else None, "auc": roc_auc(y, p) if defined else None}
    if threshold is not None:
        acted = p >= threshold
        hits = float(y[acted].sum())
        metrics["precision"] = hits / int(acted.sum()) if acted.any() else None
        metrics["recall"] = hits / positives if positives else None
    return metrics


def drift_outcome(state: Mapping[str, Any], drift_at: float | None) -> tuple[float | None, int, float | None]:
    """Detection delay (event seconds from the drift to the first alert after it), false alarms, their rate.

    A false alarm is an alert on a window that ended before the drift began (every alert of a clean
    replay, ``drift_at`` None); the rate is the share of those windows with at least one alert.
    """
    alerts, windows = state.get("alerts", []), state.get("windows", [])
    if drift_at is None:
        drift_at = float("inf")
    before = [w for w in windows if w["end"] <= drift_at]
    false = [a for a in alerts if a["window_end"] <= drift_at]
    after = [a for a in alerts if a["window_end"] > drift_at]
    delay = min(a["raised_at"] for a in after) - drift_at if after else None
    alarmed = {a["window_start"] for a in false}
    rate = len(alarmed) / len(before) if before else None
    return (round(delay, 1) if delay is not None else None), len(false), rate
