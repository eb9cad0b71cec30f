"""The online monitor: feature-log records and delayed labels -> per-window drift, alerts and online metrics.

Windows are in event time (the request's timestamp), so a replay at any speed gives the same
windows. A window's drift is final once a request past its end has been seen; its label metrics
are final once the label stream has reached ``window end + label_delay_s``: a request still without
a label then counts as not clicked (an attribution window, as ad systems count clicks). Each record
scores one or more candidates: drift compares every scored candidate with the reference (which also
covers all candidates), with the number of requests as the sample size of its tests; label metrics
use the top-ranked candidate, the ad that was shown.

Memory does not grow with traffic: a window keeps each column as counts in its reference profile's
bins (values are buffered a few thousand at a time, then counted), and per request only what its
label needs, in arrays: a 64-bit hash of its id, the shown prediction (or the shown items' hashes)
and the arm, ~13 bytes (a dict of ids took ~450). Labels wait in arrays too and are joined to their
window's requests by hash when its labels are complete; labels matching no open window are kept
up to ``max_early_labels`` (a request may be read after its label). The A/B totals keep a label and
a prediction per request of closed windows, in arrays.

The monitor's clock (the request watermark) is event time, and requests are untrusted. A request
more than ``max_lead_s`` from the clock, ahead or behind, is held, not counted: one request dated
2100 would otherwise close every window, and one from 1970 open a window of its own. Only when
``quorum`` such requests arrive in a row does the clock follow them (their median): the traffic
itself moved (a replay of another period after a stray request); windows ahead of the new clock
are dropped. A request near the clock again sends the held ones to ``future_records`` or
``late_records``, as a request for a window already closed. The label stream comes from a writer
holding the service's token: its watermark moves the clock freely, so a real gap in traffic longer
than ``max_lead_s`` resumes as soon as labels pass it.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlsd.core.records import FeatureLogRecord
from mlsd.evaluation.classification import normalized_entropy, roc_auc
from mlsd.evaluation.significance import bootstrap_difference, two_proportion_ztest
from mlsd.experiments.ab import CONTROL, TREATMENT
from mlsd.monitoring.drift import ColumnCounts, DriftThresholds, counts_drift
from mlsd.monitoring.outcomes import online_metrics, ranking_metrics, ranking_outcome
from mlsd.monitoring.profile import ColumnProfile, DatasetProfile

PREDICTION = "prediction"


def stable_hash(text: str) -> int:
    """A signed 64-bit key of ``text``, the same in every process: Python's ``hash`` of a string changes
    with each interpreter (``PYTHONHASHSEED``), so a monitor restored from a checkpoint in a new process
    could not join later labels to the requests it had counted before."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


@dataclass(frozen=True)
class MonitorConfig:
    """Window length, label delay, drift thresholds and the columns left out of drift checks."""

    window_s: float = 3600.0
    label_delay_s: float = 600.0
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    exclude: tuple[str, ...] = ()
    task: str = "binary"  # "ranking": labels are graded relevance per shown item; metrics nDCG@k, hit rate, MRR
    k: int = 10
    max_lead_s: float | None = None  # how far ahead of the clock a request may be (default: a window, >= 1 day)
    max_early_labels: int = 100_000  # labels of requests not seen (yet) kept at most, oldest dropped first
    quorum: int = 8  # records far from the clock, in a row, that move it there
    decision_threshold: float | None = None  # binary: the served action's threshold -> online precision / recall

    @property
    def lead_s(self) -> float:
        return self.max_lead_s if self.max_lead_s is not None else max(self.window_s, 86_400.0)


BUFFER = 4096  # values of a column held before they are counted into its bins


class _Column:
    """One column of one window: bin counts plus a short buffer of values not yet counted."""

    __slots__ = ("buffer", "counts", "profile")

    def __init__(self, profile: ColumnProfile) -> None:
        self.profile, self.counts = profile, ColumnCounts.empty(profile)
        self.buffer: list[Any] = []

    def extend(self, values: Iterable[Any]) -> None:
        self.buffer.extend(values)
        if len(self.buffer) >= BUFFER:
            self.flush()

    def flush(self) -> ColumnCounts:
        if self.buffer:
            kind = np.float64 if self.profile.kind == "numeric" else object  # a null number is NaN: missing
            self.counts.add(self.profile, np.asarray(self.buffer, dtype=kind))
            self.buffer = []
        return self.counts


@dataclass
class _Window:
    start: float
    columns: dict[str, _Column] = field(default_factory=dict)
    ids: array[int] = field(default_factory=lambda: array("q"))  # hashed request ids, in arrival order
    shown: array[float] = field(default_factory=lambda: array("d"))  # binary: the shown (top) prediction
    items: array[int] = field(default_factory=lambda: array("q"))  # ranking: k hashed shown items per request (0: none)
    arms: array[int] = field(default_factory=lambda: array("b"))  # arm code per request
    report: dict[str, Any] | None = None

    @property
    def requests(self) -> int:
        return len(self.ids)

    def column(self, name: str, profile: ColumnProfile) -> _Column:
        column = self.columns.get(name)
        if column is None:
            column = self.columns[name] = _Column(profile)
        return column


class OnlineMonitor:
    """Incremental monitor of one service; feed it records and labels in any interleaving."""

    def __init__(self, profile: DatasetProfile, config: MonitorConfig = MonitorConfig()) -> None:
        self.profile, self.config = profile, config
        # the profile's calibrated per-column lines, where it was calibrated on clean windows
        self.thresholds = config.thresholds.calibrated(profile.calibration)
        self.monitored = [c for c in profile.columns if c not in config.exclude]
        self.windows: dict[float, _Window] = {}
        self.closed: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.request_watermark = float("-inf")
        self.label_watermark = float("-inf")
        self._arm_codes: dict[str, int] = {}
        # labels not yet joined to a closed window: hashed request id, hashed item (ranking), value
        self._label_ids, self._label_items, self._label_values = array("q"), array("q"), array("d")
        # per arm: labels and shown predictions (binary), or per-request nDCG (ranking), of closed windows
        self._arms: dict[str, tuple[array[float], array[float]]] = {}
        self.records = 0
        self.labels = 0
        self.future_records = 0
        self.late_records = 0
        self._outliers: list[FeatureLogRecord] = []  # records far from the clock, held (at most ``quorum``)
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
            clock, lead = self.request_watermark, self.config.lead_s
            if np.isfinite(clock) and not clock - lead <= at <= clock + lead:
                # Far from the clock: held until ``quorum`` such records in a row say that the clock is
                # what is wrong (a replay of another period after a stray request); one request cannot.
                self._outliers.append(record)
                if len(self._outliers) >= self.config.quorum:
                    self._follow_outliers()
                continue
            if self._outliers:  # a record near the clock again: the ones held were strays
                for stray in self._outliers:
                    if stray.at_us / 1e6 > clock:
                        self.future_records += 1
                    else:
                        self.late_records += 1
                self._outliers = []
            self._place(record, at)

    def _follow_outliers(self) -> None:
        """Move the clock to the held records' median time; windows ahead of it were the strays' own."""
        held, self._outliers = self._outliers, []
        times = sorted(r.at_us / 1e6 for r in held)
        target = times[len(times) // 2]
        if target < self.request_watermark:
            for start in [s for s in self.windows if s > target + self.config.lead_s]:
                window = self.windows.pop(start)
                if window.report is None:  # dropped with the wrong clock's windows
                    self.late_records += window.requests
                    self.records -= window.requests
            self.request_watermark = target
        for record in held:
            self._place(record, record.at_us / 1e6)

    def _place(self, record: FeatureLogRecord, at: float) -> None:
        """Count one record near the clock into its window (moving the clock forward to it)."""
        window_s = self.config.window_s
        profile = self.profile.columns
        if at > self.request_watermark:
            # Windows are aligned, so one can only end when the clock enters a later window:
            # check then (at the event time it became possible), not on every record.
            entered = at // window_s > self.request_watermark // window_s
            self.request_watermark = at
            if entered:
                self._close_drift(at)
        start = at - at % window_s
        window = self.windows.get(start)
        if (window is None and start + window_s <= self.request_watermark) or \
                (window is not None and window.report is not None):
            self.late_records += 1  # its window has closed: too late to count
            return
        if window is None:
            window = self.windows[start] = _Window(start)
        predictions = np.asarray(record.predictions, dtype=np.float64)
        if predictions.size == 0:
            return
        features, entities = record.features, record.entities
        for name in self.monitored:
            source = features if name in features else entities if name in entities else None
            if source is not None:
                window.column(name, profile[name]).extend(source[name])
        arm = record.arm
        if arm == CONTROL and PREDICTION in profile:
            # the reference is the champion's; the challenger's scores differ by design
            window.column(PREDICTION, profile[PREDICTION]).extend(predictions.tolist())
        window.ids.append(stable_hash(record.request_id))
        window.arms.append(self._arm_codes.setdefault(arm, len(self._arm_codes)))
        if self.config.task == "ranking":  # the shown list, in the order shown (a re-ranker may reorder scores)
            shown = [stable_hash(str(item)) for item in record.items[: self.config.k]]
            window.items.extend(shown + [0] * (self.config.k - len(shown)))
        else:
            window.shown.append(float(predictions.max()))  # the top-ranked candidate is the one shown
        self.records += 1

    def add_labels(self, labels: Iterable[Mapping[str, Any]], watermark_s: float | None = None) -> None:
        """Labels ``{request_id, label}``; ``watermark_s``: the label stream is complete up to this time."""
        ranking = self.config.task == "ranking"
        for label in labels:
            self._label_ids.append(stable_hash(str(label["request_id"])))
            self._label_items.append(stable_hash(str(label.get("item"))) if ranking else 0)
            self._label_values.append(float(label["label"]))
            self.labels += 1
        if len(self._label_ids) > 2 * self.config.max_early_labels:
            self._prune_labels()  # amortized: labels of requests never seen must not pile up
        if watermark_s is not None and np.isfinite(watermark_s):
            self.label_watermark = max(self.label_watermark, watermark_s)
            # the trusted clock: requests up to here have been sent, so the request clock may follow it
            self.request_watermark = max(self.request_watermark, self.label_watermark - self.config.label_delay_s)
            # Labels are sent after their requests: requests up to here have all been seen.
            self._close_drift(self.label_watermark - self.config.label_delay_s)
        self._close_labels()

    def _close_drift(self, now: float) -> None:
        """Compute drift for every open window that ended by event time ``now``."""
        for start, window in sorted(self.windows.items()):
            if window.report is not None or now < start + self.config.window_s:
                continue
            counts = {name: column.flush() for name, column in window.columns.items()}
            # Candidates of one request share its context: significance counts requests, not candidates.
            drift = {name: counts_drift(name, self.profile.columns[name], counts[name], self.thresholds,
                                        window.requests)
                     for name in self.profile.columns if name in counts}
            end = start + self.config.window_s
            window.report = {"start": start, "end": end, "requests": window.requests,
                             "drift": {name: d.to_dict() for name, d in drift.items()}, "labels": None}
            for name, d in drift.items():
                if d.drift:
                    self.alerts.append({"window_start": start, "window_end": end, "raised_at": now,
                                        "column": name, "reasons": list(d.reasons), "psi": d.psi, "js": d.js})
            window.columns.clear()
            self.closed.append(window.report)

    def _close_labels(self) -> None:
        done = []
        for start, window in sorted(self.windows.items()):
            end = start + self.config.window_s
            if window.report is None or self.label_watermark < end + self.config.label_delay_s:
                continue
            ids = np.frombuffer(window.ids, np.int64) if window.requests else np.zeros(0, np.int64)
            matched = np.isin(np.frombuffer(self._label_ids, np.int64), ids) if len(self._label_ids) \
                else np.zeros(0, bool)
            if self.config.task == "ranking":
                self._close_ranking(window, ids, matched)
            else:
                self._close_binary(window, ids, matched)
            self._keep_labels(~matched)
            done.append(start)
        for start in done:
            del self.windows[start]
        if done:
            self._ab = None  # the arms' totals changed
            self._prune_labels()

    def _arm_names(self, window: _Window) -> dict[str, np.ndarray]:
        """Each arm's rows of ``window`` (arms by name, in name order)."""
        codes = np.frombuffer(window.arms, np.int8) if window.requests else np.zeros(0, np.int8)
        rows = {name: np.flatnonzero(codes == code) for name, code in sorted(self._arm_codes.items())}
        return {name: r for name, r in rows.items() if r.size}

    def _close_binary(self, window: _Window, ids: np.ndarray, matched: np.ndarray) -> None:
        assert window.report is not None
        y = np.zeros(len(ids))
        if matched.any():  # a request's label is the last one sent for it
            label_ids = np.frombuffer(self._label_ids, np.int64)[matched]
            values = np.frombuffer(self._label_values, np.float64)[matched]
            last = {int(i): float(v) for i, v in zip(label_ids, values, strict=True)}
            y = np.asarray([last.get(int(i), 0.0) for i in ids])
        p = np.frombuffer(window.shown, np.float64) if window.requests else np.zeros(0)
        arms = self._arm_names(window)
        t = self.config.decision_threshold
        window.report["labels"] = {"all": online_metrics(y, p, t),
                                   **{arm: online_metrics(y[rows], p[rows], t) for arm, rows in arms.items()}}
        for arm, rows in arms.items():
            total = self._arms.setdefault(arm, (array("f"), array("d")))
            total[0].extend(y[rows].tolist())
            total[1].extend(p[rows].tolist())

    def _close_ranking(self, window: _Window, ids: np.ndarray, matched: np.ndarray) -> None:
        assert window.report is not None
        k = self.config.k
        relevance: dict[int, dict[int, float]] = {}
        for i in np.flatnonzero(matched):  # one label per shown item
            relevance.setdefault(self._label_ids[i], {})[self._label_items[i]] = self._label_values[i]
        shown = np.frombuffer(window.items, np.int64).reshape(-1, k) if window.requests else np.zeros((0, k), np.int64)
        outcomes = np.asarray([ranking_outcome(tuple(int(x) for x in row if x != 0), relevance.get(int(rid)), k)
                               for rid, row in zip(ids, shown, strict=True)]).reshape(-1, 3)
        arms = self._arm_names(window)
        window.report["labels"] = {"all": ranking_metrics(outcomes, k),
                                   **{arm: ranking_metrics(outcomes[rows], k) for arm, rows in arms.items()}}
        for arm, rows in arms.items():
            self._arms.setdefault(arm, (array("d"), array("d")))[0].extend(outcomes[rows, 0].tolist())

    def _keep_labels(self, keep: np.ndarray) -> None:
        if len(keep) and not keep.all():
            for name, code in (("_label_ids", "q"), ("_label_items", "q"), ("_label_values", "d")):
                values = np.frombuffer(getattr(self, name), np.int64 if code == "q" else np.float64)[keep]
                setattr(self, name, array(code, values.tobytes()))

    def _prune_labels(self) -> None:
        """Drop the oldest labels that match no open window's request beyond ``max_early_labels``."""
        if len(self._label_ids) <= self.config.max_early_labels:
            return
        open_ids = [np.frombuffer(w.ids, np.int64) for w in self.windows.values() if w.requests]
        waiting = np.isin(np.frombuffer(self._label_ids, np.int64), np.concatenate(open_ids)) if open_ids \
            else np.zeros(len(self._label_ids), bool)
        orphans = np.flatnonzero(~waiting)
        keep = np.ones(len(waiting), bool)
        keep[orphans[: max(len(orphans) - self.config.max_early_labels, 0)]] = False
        self._keep_labels(keep)

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
        arrays = {arm: (np.asarray(y, np.float64), np.asarray(p, np.float64)) for arm, (y, p) in self._arms.items()}
        y0, y1 = arrays[CONTROL][0], arrays[TREATMENT][0]
        test = two_proportion_ztest(int(y0.sum()), len(y0), int(y1.sum()), len(y1))
        summary: dict[str, Any] = {arm: online_metrics(*arrays[arm], self.config.decision_threshold)
                                   for arm in (CONTROL, TREATMENT)}
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
        a, b = (np.asarray(self._arms[arm][0], np.float64) for arm in (CONTROL, TREATMENT))
        diff, ci = bootstrap_difference(lambda y, _p: float(np.mean(y)), (a, a), (b, b), resamples=resamples)
        test = stats.ttest_ind(b, a, equal_var=False) if min(len(a), len(b)) > 1 else None
        return {CONTROL: {"rows": len(a), f"ndcg@{k}": float(a.mean())},
                TREATMENT: {"rows": len(b), f"ndcg@{k}": float(b.mean())},
                f"ndcg@{k}_difference": diff, f"ndcg@{k}_ci95": list(ci),
                "p_value": float(test.pvalue) if test is not None and np.isfinite(test.pvalue) else None}

    def state(self) -> dict[str, Any]:
        """Everything the dashboard, ``/metrics`` and the report show, as JSON-ready data."""
        return {"windows": self.closed, "alerts": self.alerts, "ab": self.ab_summary(),
                "records": self.records, "labels": self.labels, "future_records": self.future_records,
                "late_records": self.late_records, "request_watermark": _finite(self.request_watermark),
                "label_watermark": _finite(self.label_watermark), "window_s": self.config.window_s,
                "label_delay_s": self.config.label_delay_s, "monitored": self.monitored}


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None
