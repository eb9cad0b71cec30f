"""The online monitor: feature-log records and delayed labels -> per-window drift, alerts and online metrics.

Windows are in event time (the request's timestamp), so a replay at any speed gives the same
windows. A window's drift is final once a request past its end has been seen; its label metrics
are final once the label stream has reached ``window end + label_delay_s``: a request still without
a label then counts as not clicked (an attribution window, as ad systems count clicks). Each record
scores one or more candidates: drift compares every scored candidate with the reference (which also
covers all candidates), with the number of requests as the sample size of its tests; label metrics
use the top-ranked candidate, the ad that was shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlsd.core.records import FeatureLogRecord
from mlsd.evaluation.classification import calibration_ratio, normalized_entropy, roc_auc
from mlsd.evaluation.significance import bootstrap_difference, two_proportion_ztest
from mlsd.experiments.ab import CONTROL, TREATMENT
from mlsd.monitoring.drift import DriftThresholds, detect_drift
from mlsd.monitoring.profile import DatasetProfile

PREDICTION = "prediction"


@dataclass(frozen=True)
class MonitorConfig:
    """Window length, label delay, drift thresholds and the columns left out of drift checks."""

    window_s: float = 3600.0
    label_delay_s: float = 600.0
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    exclude: tuple[str, ...] = ()
    task: str = "binary"  # "ranking": labels are graded relevance per shown item; metrics nDCG@k, hit rate, MRR
    k: int = 10


@dataclass
class _Window:
    start: float
    columns: dict[str, list[Any]] = field(default_factory=dict)
    predictions: list[float] = field(default_factory=list)
    # id -> (shown prediction, arm); ranking: (the shown items in ranked order, arm)
    requests: dict[str, tuple[Any, str]] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)  # ranking: id -> {item: relevance}
    report: dict[str, Any] | None = None


def ranking_outcome(shown: tuple[str, ...], relevance: Mapping[str, float] | None,
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


def online_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | int | None]:
    """Rows, observed rate, mean prediction, calibration ratio, NE and AUC (None where undefined)."""
    rows = len(y)
    if rows == 0:
        return {"rows": 0, "rate": None, "mean_prediction": None, "calibration": None, "ne": None, "auc": None}
    positives = float(y.sum())
    defined = 0 < positives < rows
    return {"rows": rows, "positives": int(positives), "rate": positives / rows, "mean_prediction": float(p.mean()),
            "calibration": calibration_ratio(y, p) if positives else None,
            "ne": normalized_entropy(y, p) if defined else None, "auc": roc_auc(y, p) if defined else None}


class OnlineMonitor:
    """Incremental monitor of one service; feed it records and labels in any interleaving."""

    def __init__(self, profile: DatasetProfile, config: MonitorConfig = MonitorConfig()) -> None:
        self.profile, self.config = profile, config
        self.monitored = [c for c in profile.columns if c not in config.exclude]
        self.windows: dict[float, _Window] = {}
        self.closed: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.request_watermark = float("-inf")
        self.label_watermark = float("-inf")
        self._request_window: dict[str, float] = {}
        self._early_labels: dict[str, Any] = {}
        self._arms: dict[str, tuple[list[float], list[float]]] = {}
        self.records = 0
        self.labels = 0
        self._ab: dict[str, Any] | None = None

    def _window(self, at: float) -> _Window:
        start = at - at % self.config.window_s
        if start not in self.windows:
            self.windows[start] = _Window(start)
        return self.windows[start]

    def add_records(self, records: Iterable[FeatureLogRecord]) -> None:
        """Feature-log records, in the order they were written."""
        for record in records:
            at = record.at_us / 1e6
            if at > self.request_watermark:
                # Windows are aligned, so one can only end when the clock enters a later window:
                # check then (at the event time it became possible), not on every record.
                entered = at // self.config.window_s > self.request_watermark // self.config.window_s
                self.request_watermark = at
                if entered:
                    self._close_drift(at)
            window = self._window(at)
            if window.report is not None:  # arrived after its window closed: too late to count
                continue
            predictions = np.asarray(record.predictions, dtype=np.float64)
            if predictions.size == 0:
                continue
            features, entities = record.features, record.entities
            for name in self.monitored:
                source = features if name in features else entities if name in entities else None
                if source is not None:
                    window.columns.setdefault(name, []).extend(source[name])
            arm = record.arm
            if arm == CONTROL:  # the reference is the champion's; the challenger's scores differ by design
                window.predictions.extend(predictions.tolist())
            request_id = record.request_id
            if self.config.task == "ranking":  # the shown list, in the order shown (a re-ranker may reorder scores)
                window.requests[request_id] = (tuple(str(item) for item in record.items[: self.config.k]), arm)
            else:
                top = int(predictions.argmax())  # the top-ranked candidate is the one shown
                window.requests[request_id] = (float(predictions[top]), arm)
            self._request_window[request_id] = window.start
            if request_id in self._early_labels:
                window.labels[request_id] = self._early_labels.pop(request_id)
            self.records += 1

    def add_labels(self, labels: Iterable[Mapping[str, Any]], watermark_s: float | None = None) -> None:
        """Labels ``{request_id, label}``; ``watermark_s``: the label stream is complete up to this time."""
        ranking = self.config.task == "ranking"
        for label in labels:
            request_id = str(label["request_id"])
            value: Any = float(label["label"])
            start = self._request_window.get(request_id)
            target: dict[str, Any] = (self._early_labels if start is None or start not in self.windows
                                      else self.windows[start].labels)
            if ranking:  # one label per shown item: collect them per request
                target.setdefault(request_id, {})[str(label.get("item"))] = value
            else:
                target[request_id] = value
            self.labels += 1
        if watermark_s is not None:
            self.label_watermark = max(self.label_watermark, watermark_s)
            # Labels are sent after their requests: requests up to here have all been seen.
            self._close_drift(self.label_watermark - self.config.label_delay_s)
        self._close_labels()

    def _close_drift(self, now: float) -> None:
        """Compute drift for every open window that ended by event time ``now``."""
        for start, window in sorted(self.windows.items()):
            if window.report is not None or now < start + self.config.window_s:
                continue
            columns: dict[str, Any] = {
                name: np.asarray(values, dtype=np.float64 if self.profile.columns[name].kind == "numeric" else object)
                for name, values in window.columns.items()}
            if window.predictions:
                columns[PREDICTION] = np.asarray(window.predictions)
            # Candidates of one request share its context: significance counts requests, not candidates.
            drift = detect_drift(self.profile, columns, self.config.thresholds, sample_size=len(window.requests))
            end = start + self.config.window_s
            window.report = {"start": start, "end": end, "requests": len(window.requests),
                             "drift": {name: d.to_dict() for name, d in drift.items()}, "labels": None}
            for name, d in drift.items():
                if d.drift:
                    self.alerts.append({"window_start": start, "window_end": end, "raised_at": now,
                                        "column": name, "reasons": list(d.reasons), "psi": d.psi, "js": d.js})
            window.columns.clear()
            window.predictions.clear()
            self.closed.append(window.report)

    def _close_labels(self) -> None:
        done = []
        for start, window in sorted(self.windows.items()):
            end = start + self.config.window_s
            if window.report is None or self.label_watermark < end + self.config.label_delay_s:
                continue
            if self.config.task == "ranking":
                self._close_ranking(window)
                done.append(start)
                continue
            by_arm: dict[str, tuple[list[float], list[float]]] = {}
            for request_id, (shown, arm) in window.requests.items():
                y, p = by_arm.setdefault(arm, ([], []))
                y.append(window.labels.get(request_id, 0.0))
                p.append(shown)
                self._request_window.pop(request_id, None)
            window.report["labels"] = {
                "all": online_metrics(np.asarray([v for y, _ in by_arm.values() for v in y]),
                                      np.asarray([v for _, p in by_arm.values() for v in p])),
                **{arm: online_metrics(np.asarray(y), np.asarray(p)) for arm, (y, p) in sorted(by_arm.items())}}
            for arm, (y, p) in by_arm.items():
                total = self._arms.setdefault(arm, ([], []))
                total[0].extend(y)
                total[1].extend(p)
            done.append(start)
        for start in done:
            del self.windows[start]
        if done:
            self._ab = None  # the arms' totals changed

    def _close_ranking(self, window: _Window) -> None:
        k = self.config.k
        by_arm: dict[str, list[tuple[float, float, float]]] = {}
        for request_id, (shown, arm) in window.requests.items():
            by_arm.setdefault(arm, []).append(ranking_outcome(shown, window.labels.get(request_id), k))
            self._request_window.pop(request_id, None)
        assert window.report is not None
        every = np.asarray([o for v in by_arm.values() for o in v]).reshape(-1, 3)
        window.report["labels"] = {"all": ranking_metrics(every, k),
                                   **{arm: ranking_metrics(np.asarray(v), k) for arm, v in sorted(by_arm.items())}}
        for arm, v in by_arm.items():
            self._arms.setdefault(arm, ([], []))[0].extend(o[0] for o in v)

    def ab_summary(self, resamples: int = 200) -> dict[str, Any] | None:
        """Per-arm online metrics over every label-complete window and the significance of the differences.

        Cached until another window's labels complete: the bootstrap is the monitor's costliest step.
        """
        if not (CONTROL in self._arms and TREATMENT in self._arms):
            return None
        if self._ab is None:
            self._ab = self._ab_summary(resamples)
        return self._ab

    def _ab_summary(self, resamples: int) -> dict[str, Any]:
        if self.config.task == "ranking":
            return self._ranking_ab(resamples)
        arrays = {arm: (np.asarray(y), np.asarray(p)) for arm, (y, p) in self._arms.items()}
        y0, y1 = arrays[CONTROL][0], arrays[TREATMENT][0]
        test = two_proportion_ztest(int(y0.sum()), len(y0), int(y1.sum()), len(y1))
        summary: dict[str, Any] = {arm: online_metrics(*arrays[arm]) for arm in (CONTROL, TREATMENT)}
        summary.update({"rate_difference": test.difference, "rate_ci95": list(test.ci95), "z": test.z,
                        "p_value": test.p_value})
        for name, metric in (("ne", normalized_entropy), ("auc", roc_auc)):
            if min(y0.sum(), y1.sum()) > 0:
                diff, ci = bootstrap_difference(metric, arrays[CONTROL], arrays[TREATMENT], resamples=resamples)
                summary[f"{name}_difference"], summary[f"{name}_ci95"] = diff, list(ci)
        return summary

    def _ranking_ab(self, resamples: int) -> dict[str, Any]:
        """Per-arm mean nDCG@k of the shown lists, the difference with a bootstrap interval and Welch's test."""
        from scipy import stats

        k = self.config.k
        a, b = (np.asarray(self._arms[arm][0]) for arm in (CONTROL, TREATMENT))
        diff, ci = bootstrap_difference(lambda y, _p: float(np.mean(y)), (a, a), (b, b), resamples=resamples)
        test = stats.ttest_ind(b, a, equal_var=False) if min(len(a), len(b)) > 1 else None
        return {CONTROL: {"rows": len(a), f"ndcg@{k}": float(a.mean())},
                TREATMENT: {"rows": len(b), f"ndcg@{k}": float(b.mean())},
                f"ndcg@{k}_difference": diff, f"ndcg@{k}_ci95": list(ci),
                "p_value": float(test.pvalue) if test is not None and np.isfinite(test.pvalue) else None}

    def state(self) -> dict[str, Any]:
        """Everything the dashboard, ``/metrics`` and the report show, as JSON-ready data."""
        return {"windows": self.closed, "alerts": self.alerts, "ab": self.ab_summary(),
                "records": self.records, "labels": self.labels, "request_watermark": _finite(self.request_watermark),
                "label_watermark": _finite(self.label_watermark), "window_s": self.config.window_s,
                "label_delay_s": self.config.label_delay_s, "monitored": self.monitored}


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def drift_outcome(state: Mapping[str, Any], drift_at: float | None) -> tuple[float | None, int, float | None]:
    """Detection delay (event seconds from the drift to the first alert after it), false alarms, their rate.

    A false alarm is an alert on a window that ended before the drift began; the rate is the share of
    those windows with at least one alert.
    """
    alerts, windows = state.get("alerts", []), state.get("windows", [])
    if drift_at is None:
        return None, len(alerts), None
    before = [w for w in windows if w["end"] <= drift_at]
    false = [a for a in alerts if a["window_end"] <= drift_at]
    after = [a for a in alerts if a["window_end"] > drift_at]
    delay = min(a["raised_at"] for a in after) - drift_at if after else None
    alarmed = {a["window_start"] for a in false}
    rate = len(alarmed) / len(before) if before else None
    return (round(delay, 1) if delay is not None else None), len(false), rate
