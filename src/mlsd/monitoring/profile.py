"""Reference profiles: a small, JSON-serializable summary of each training column and of the prediction.

Numbers keep a quantile sketch (up to 100 cut points) with the reference share of every fine bin,
plus a coarse grouping of those bins into about ten equal-mass bins: drift is then measured against
the profile alone, without re-reading the training data. Categories keep their top-k shares plus
one "other" share. Missing values (NaN / None) are counted apart from the distribution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

FINE_BINS = 100
COARSE_BINS = 10
TOP_K = 100
SKETCH_ROWS = 200_000
OTHER = "__other__"


@dataclass(frozen=True)
class NumericProfile:
    """Quantile cut points of the reference and its share in each fine bin ``(-inf, c0], (c0, c1], ...``."""

    cuts: np.ndarray
    shares: np.ndarray  # len(cuts) + 1 fine-bin shares of the non-missing reference values
    groups: np.ndarray  # coarse bin of each fine bin (non-decreasing, 0..k-1)
    count: int
    missing: float
    mean: float

    kind = "numeric"

    @classmethod
    def build(cls, values: np.ndarray, fine_bins: int = FINE_BINS, coarse_bins: int = COARSE_BINS) -> NumericProfile:
        x = np.asarray(values, dtype=np.float64)
        present = x[~np.isnan(x)]
        if present.size == 0:
            return cls(np.zeros(0), np.ones(1), np.zeros(1, np.int64), 0, 1.0 if x.size else 0.0, float("nan"))
        probs = np.arange(1, fine_bins) / fine_bins
        # Cut points from a fixed-seed sample of large columns (their shares below stay exact): the
        # sort behind exact quantiles is most of a profile's cost, and 100 cuts need no more rows.
        basis = present if present.size <= SKETCH_ROWS else \
            np.random.default_rng(0).choice(present, SKETCH_ROWS, replace=False)
        cuts = np.unique(np.quantile(basis, probs, method="lower"))
        shares = fine_counts(cuts, present) / present.size
        return cls(cuts, shares, _equal_mass_groups(shares, coarse_bins), int(x.size),
                   float(1 - present.size / x.size), float(present.mean()))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "cuts": self.cuts.tolist(), "shares": self.shares.tolist(),
                "groups": self.groups.tolist(), "count": self.count, "missing": self.missing, "mean": self.mean}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericProfile:
        return cls(np.asarray(data["cuts"], np.float64), np.asarray(data["shares"], np.float64),
                   np.asarray(data["groups"], np.int64), int(data["count"]), float(data["missing"]),
                   float(data["mean"]))


@dataclass(frozen=True)
class CategoricalProfile:
    """The reference's top-k categories (as strings) with their shares; the rest is one "other" share."""

    categories: tuple[str, ...]
    shares: np.ndarray  # len(categories) + 1, the last one is "other"
    count: int
    missing: float

    kind = "categorical"

    @classmethod
    def build(cls, values: Sequence[Any] | np.ndarray, top_k: int = TOP_K) -> CategoricalProfile:
        codes, uniques = pd.factorize(_factorizable(values), use_na_sentinel=True)
        present = codes[codes >= 0]
        counts = np.bincount(present, minlength=len(uniques))
        order = np.argsort(-counts, kind="stable")[:top_k]
        total = max(present.size, 1)
        top = counts[order]
        shares = np.append(top, counts.sum() - top.sum()) / total
        n = len(codes)
        return cls(tuple(_key(uniques[i]) for i in order), shares, n, float(1 - present.size / n) if n else 0.0)

    def counts(self, values: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, int]:
        """Current counts per profile category (+ other) and the number of missing values."""
        codes, uniques = pd.factorize(_factorizable(values), use_na_sentinel=True)
        index = {c: i for i, c in enumerate(self.categories)}
        slot = np.array([index.get(_key(u), len(self.categories)) for u in uniques], dtype=np.int64)
        present = codes[codes >= 0]
        per_unique = np.bincount(present, minlength=len(uniques))
        counts = np.bincount(slot, weights=per_unique, minlength=len(self.categories) + 1) if len(uniques) \
            else np.zeros(len(self.categories) + 1)
        return counts, int(len(codes) - present.size)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "categories": list(self.categories), "shares": self.shares.tolist(),
                "count": self.count, "missing": self.missing}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalProfile:
        return cls(tuple(data["categories"]), np.asarray(data["shares"], np.float64), int(data["count"]),
                   float(data["missing"]))


ColumnProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class Calibration:
    """Per-column drift thresholds and how they were found (see :mod:`mlsd.monitoring.calibrate`)."""

    window_s: float
    max_alert_rate: float
    margin: float
    period: str  # the clean data the windows came from
    windows: int  # windows with enough rows to count
    columns: dict[str, dict[str, float]]  # column -> {"psi": line, "js": line, "windows": n}

    def to_dict(self) -> dict[str, Any]:
        return {"window_s": self.window_s, "max_alert_rate": self.max_alert_rate, "margin": self.margin,
                "period": self.period, "windows": self.windows, "columns": self.columns}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(float(data["window_s"]), float(data["max_alert_rate"]), float(data["margin"]), str(data["period"]),
                   int(data["windows"]), {str(k): dict(v) for k, v in data["columns"].items()})


@dataclass(frozen=True)
class DatasetProfile:
    """One profile per column; stored as ``profile.json`` beside a registered model version.

    ``calibration``: per-column drift thresholds learned on clean windows, when calibrated.
    """

    columns: dict[str, ColumnProfile]
    calibration: Calibration | None = None

    @classmethod
    def build(cls, numeric: Mapping[str, np.ndarray], categorical: Mapping[str, Any] | None = None) -> DatasetProfile:
        columns: dict[str, ColumnProfile] = {name: NumericProfile.build(v) for name, v in numeric.items()}
        columns.update({name: CategoricalProfile.build(v) for name, v in (categorical or {}).items()})
        return cls(columns)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": 1, "columns": {name: p.to_dict() for name, p in self.columns.items()}}
        if self.calibration is not None:
            data["calibration"] = self.calibration.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetProfile:
        columns: dict[str, ColumnProfile] = {}
        for name, p in data["columns"].items():
            columns[name] = NumericProfile.from_dict(p) if p["kind"] == "numeric" else CategoricalProfile.from_dict(p)
        calibration = data.get("calibration")
        return cls(columns, Calibration.from_dict(calibration) if calibration else None)

    def with_columns(self, columns: Mapping[str, ColumnProfile]) -> DatasetProfile:
        """This profile with ``columns`` added (or replaced); the calibration is kept."""
        return DatasetProfile({**self.columns, **columns}, self.calibration)


def fine_counts(cuts: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Counts of non-missing values in the fine bins ``(-inf, c0], (c0, c1], ..., (c_last, inf)``."""
    return np.bincount(np.searchsorted(cuts, present, side="left"), minlength=cuts.size + 1).astype(np.float64)


def _equal_mass_groups(shares: np.ndarray, k: int) -> np.ndarray:
    """Consecutive fine bins merged until each group holds about 1/k of the reference."""
    groups = np.zeros(shares.size, np.int64)
    group, mass = 0, 0.0
    for i, share in enumerate(shares):
        if mass >= 1.0 / k - 1e-12 and share > 0:
            group, mass = group + 1, 0.0
        groups[i] = group
        mass += share
    return groups


def _factorizable(values: Any) -> Any:
    """NumPy arrays and pandas categoricals as they are (a categorical factorizes from its codes)."""
    if isinstance(values, np.ndarray | pd.Categorical):
        return values
    return np.asarray(values, dtype=object)


def _key(value: Any) -> str:
    """Categories are compared as strings, so 7, 7.0 and "7" from JSON all land in one bucket."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)
