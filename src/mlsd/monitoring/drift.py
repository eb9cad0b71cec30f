"""Drift of current data against a stored reference profile: PSI, Kolmogorov–Smirnov, chi-squared, Jensen–Shannon.

Every statistic is computed from one pass of binning per column against the profile's cut points
or categories (no training data is read). Numbers: PSI and Jensen–Shannon on the ~10 equal-mass
coarse bins, KS on the ~100 fine quantile bins (a binned KS, never above the exact one). Categories:
PSI, Jensen–Shannon and a two-sample chi-squared test over top-k + other. Zero shares are
replaced by a small epsilon before logs, as Evidently and most PSI write-ups do.

The verdict needs both an effect size over its threshold and a significant test (see
:class:`DriftThresholds`).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import stats

from mlsd.monitoring.profile import (
    Calibration,
    CategoricalProfile,
    ColumnProfile,
    DatasetProfile,
    NumericProfile,
    fine_counts,
)

EPSILON = 1e-4


@dataclass(frozen=True)
class DriftThresholds:
    """A column drifts when an effect size crosses its threshold *and* the difference is significant.

    Effect sizes: PSI and Jensen–Shannon distance (``None`` disables one). Significance: the KS
    (numbers) or chi-squared (categories) p-value below ``p_value``; ``None`` judges on effect size
    alone. Both are needed because a small window over many categories has a large PSI by chance
    (about (categories - 1) / rows), while a large window makes trivial differences significant.
    """

    # 0.25 is the usual "significant shift" line for PSI; for small shifts JS distance² ≈ PSI / 8,
    # so 0.18 is about the same shift
    psi: float | None = 0.25
    js: float | None = 0.18
    p_value: float | None = 0.001
    min_rows: int = 100  # fewer current observations than this (present values, per request): no verdict
    # per-column effect-size lines from a calibration ({"psi": .., "js": ..}); a column's line is the
    # higher of its own and the one above
    columns: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def calibrated(self, calibration: Calibration | None) -> DriftThresholds:
        """These thresholds with a profile's calibrated per-column lines (None: unchanged)."""
        return self if calibration is None else replace(self, columns={**calibration.columns, **self.columns})

    def for_column(self, name: str) -> DriftThresholds:
        """The thresholds that apply to one column."""
        lines = self.columns.get(name)
        if not lines:
            return self
        return replace(self, psi=None if self.psi is None else max(self.psi, float(lines["psi"])),
                       js=None if self.js is None else max(self.js, float(lines["js"])), columns={})


@dataclass(frozen=True)
class ColumnDrift:
    """Drift statistics of one column in one window."""

    column: str
    kind: str
    rows: int
    psi: float
    js: float
    ks: float | None
    ks_p: float | None
    chi2_p: float | None
    missing: float
    drift: bool
    reasons: tuple[str, ...]
    shares: dict[str, float] | None = None  # categorical: the window's share of each reference category

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def psi(reference: np.ndarray, current: np.ndarray, epsilon: float = EPSILON) -> float:
    """Population stability index of two share vectors over the same bins."""
    r = np.maximum(np.asarray(reference, np.float64), epsilon)
    c = np.maximum(np.asarray(current, np.float64), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen–Shannon distance (natural log, the square root of the divergence; 0 .. sqrt(ln 2))."""
    r = np.asarray(reference, np.float64)
    c = np.asarray(current, np.float64)
    r, c = r / r.sum(), c / c.sum()
    m = (r + c) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / m[mask])))

    return float(np.sqrt(max((kl(r) + kl(c)) / 2, 0.0)))


def ks_binned(reference_shares: np.ndarray, current_counts: np.ndarray, n_reference: int) -> tuple[float, float]:
    """Two-sample KS statistic at the bin edges and its asymptotic p-value."""
    n = float(current_counts.sum())
    d = float(np.max(np.abs(np.cumsum(reference_shares)[:-1] - np.cumsum(current_counts)[:-1] / n), initial=0.0))
    effective = np.sqrt(n * n_reference / (n + n_reference))
    return d, float(stats.kstwobign.sf(d * effective))


def chi2_two_sample(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """p-value of the chi-squared test that the reference and current counts come from one distribution.

    Two samples (a 2 x k contingency table), not a goodness of fit: the reference shares are themselves
    estimated from a finite sample, and treating them as exact overstates significance for rare
    categories. Bins empty on both sides (an unused "other") add nothing and no degree of freedom.
    """
    used = (reference_counts > 0) | (current_counts > 0)
    table = np.vstack([reference_counts[used], current_counts[used]]).astype(np.float64)
    totals = table.sum(axis=1, keepdims=True)
    if table.shape[1] < 2 or (totals == 0).any():
        return 1.0
    expected = totals * table.sum(axis=0, keepdims=True) / totals.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return float(stats.chi2.sf(statistic, table.shape[1] - 1))


@dataclass
class ColumnCounts:
    """A column's current values as counts in its profile's bins (fine bins, or categories + other) and missing.

    What a monitoring window keeps instead of the values: its size depends on the profile, not on traffic.
    """

    bins: np.ndarray
    missing: int = 0

    @classmethod
    def empty(cls, profile: ColumnProfile) -> ColumnCounts:
        size = profile.cuts.size + 1 if isinstance(profile, NumericProfile) else len(profile.categories) + 1
        return cls(np.zeros(size, np.float64))

    @classmethod
    def of(cls, profile: ColumnProfile, values: Any) -> ColumnCounts:
        counts = cls.empty(profile)
        counts.add(profile, values)
        return counts

    def add(self, profile: ColumnProfile, values: Any) -> None:
        if isinstance(profile, NumericProfile):
            x = np.asarray(values, dtype=np.float64)
            present = x[~np.isnan(x)]
            self.bins += fine_counts(profile.cuts, present)
            self.missing += int(x.size - present.size)
        else:
            counts, missing = profile.counts(values)
            self.bins += counts
            self.missing += missing

    @property
    def rows(self) -> int:
        return int(self.bins.sum())


def column_drift(name: str, profile: ColumnProfile, values: Any, thresholds: DriftThresholds = DriftThresholds(),
                 sample_size: int | None = None) -> ColumnDrift:
    """Drift of one column's current values against its reference profile.

    ``sample_size``: the number of independent observations behind ``values`` when rows are not
    independent (several candidates of one request); the tests use it instead of the row count.
    """
    return counts_drift(name, profile, ColumnCounts.of(profile, values), thresholds, sample_size)


def counts_drift(name: str, profile: ColumnProfile, current: ColumnCounts,
                 thresholds: DriftThresholds = DriftThresholds(), sample_size: int | None = None) -> ColumnDrift:
    """Drift of one column from its current counts (see :func:`column_drift`)."""
    thresholds = thresholds.for_column(name)
    rows = current.rows
    missing = current.missing / (rows + current.missing) if rows + current.missing else 0.0
    # Candidates of one request repeat its request-level values: ``sample_size`` requests stand behind
    # all rows, missing ones included, so the present values are worth ``sample_size x present share``.
    scale = min(sample_size / (rows + current.missing), 1.0) if sample_size and rows else 1.0
    effective = rows * scale
    if isinstance(profile, NumericProfile):
        fine = current.bins
        ref_coarse = np.bincount(profile.groups, weights=profile.shares)
        cur_coarse = np.bincount(profile.groups, weights=fine) / max(rows, 1)
        ks, ks_p = ks_binned(profile.shares, fine * scale, profile.count) if rows else (0.0, 1.0)
        chi2_p = None
        p = psi(ref_coarse, cur_coarse)
        js = js_distance(ref_coarse, cur_coarse) if rows else 0.0
    else:
        counts = current.bins
        shares = counts / max(rows, 1)
        p = psi(profile.shares, shares)
        js = js_distance(profile.shares, shares) if rows else 0.0
        reference_counts = profile.shares * profile.count * (1.0 - profile.missing)
        ks, ks_p, chi2_p = None, None, chi2_two_sample(reference_counts, counts * scale) if rows else 1.0
    reasons: list[str] = []
    significance = ks_p if ks_p is not None else chi2_p
    if effective >= thresholds.min_rows and (thresholds.p_value is None or (significance or 0.0) < thresholds.p_value):
        if thresholds.psi is not None and p >= thresholds.psi:
            reasons.append("psi")
        if thresholds.js is not None and js >= thresholds.js:
            reasons.append("js")
    window_shares = None if isinstance(profile, NumericProfile) else {
        c: round(float(v), 6) for c, v in zip((*profile.categories, "other"), shares, strict=True)}
    return ColumnDrift(name, profile.kind, rows, round(p, 6), round(js, 6), ks, ks_p, chi2_p, round(missing, 6),
                       bool(reasons), tuple(reasons), window_shares)


def detect_drift(profile: DatasetProfile, columns: Mapping[str, Any], thresholds: DriftThresholds = DriftThresholds(),
                 *, threads: int = 1, sample_size: int | None = None) -> dict[str, ColumnDrift]:
    """Drift of every profiled column present in ``columns`` (NumPy's binning releases the GIL)."""
    names = [name for name in profile.columns if name in columns]

    def one(name: str) -> ColumnDrift:
        return column_drift(name, profile.columns[name], columns[name], thresholds, sample_size)

    if threads > 1 and len(names) > 1:
        with ThreadPoolExecutor(threads) as pool:
            return dict(zip(names, pool.map(one, names), strict=True))
    return {name: one(name) for name in names}


__all__ = ["CategoricalProfile", "ColumnCounts", "ColumnDrift", "DriftThresholds", "chi2_two_sample", "column_drift",
           "counts_drift", "detect_drift", "js_distance", "ks_binned", "psi"]
