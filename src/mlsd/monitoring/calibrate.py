"""Per-column drift thresholds calibrated on clean windows of the training side, so a clean replay stays quiet.

One fixed PSI / Jensen–Shannon line for every column alerts on features whose distribution moves
within a day by design: a click count over the last hour follows the day's traffic curve (on
TalkingData its PSI against the whole validation day reaches 4 in a night window), the channel mix
follows the hour. :func:`calibrate` cuts a period the model did not train on (the validation period,
the profile's own reference) into windows as long as the monitor's, measures each column in each
window against the profile exactly as the monitor will, and raises that column's thresholds to
``margin`` times the ``1 - max_alert_rate`` quantile of what the clean windows reached (never below
the base thresholds). With ``max_alert_rate=0`` no clean window would have alerted, with a margin
for the windows the period did not show. Only windows with at least ``min_rows`` rows count: the
monitor gives no verdict on smaller ones either.

The result travels inside the profile (``DatasetProfile.calibration``), so the thresholds are
registered with the model version they were calibrated for, and every monitor built from that
profile applies them (:meth:`DriftThresholds.calibrated`). Nothing here reads the test period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from mlsd.monitoring.drift import DriftThresholds, column_drift
from mlsd.monitoring.profile import Calibration, DatasetProfile

UNGATED = DriftThresholds(psi=None, js=None, p_value=None, min_rows=0)
DEFAULT = DriftThresholds()


def window_ids(times_s: np.ndarray, window_s: float) -> np.ndarray:
    """The monitor's window of each time: windows start at multiples of ``window_s`` (event time)."""
    return np.floor(np.asarray(times_s, np.float64) / window_s).astype(np.int64)


def calibrate(profile: DatasetProfile, columns: Mapping[str, Any], times_s: np.ndarray, window_s: float, *,
              base: DriftThresholds = DEFAULT, max_alert_rate: float = 0.0, margin: float = 1.25,
              period: str = "validation") -> DatasetProfile:
    """``profile`` with per-column thresholds from the windows of ``columns`` (rows at ``times_s``).

    Columns calibrated before and not in ``columns`` keep their thresholds.
    """
    if not 0.0 <= max_alert_rate < 1.0:
        raise ValueError(f"max_alert_rate must be in [0, 1), got {max_alert_rate}")
    if margin < 1.0:
        raise ValueError(f"margin must be at least 1, got {margin}")
    ids = window_ids(times_s, window_s)
    windows = [np.flatnonzero(ids == w) for w in np.unique(ids)]
    windows = [rows for rows in windows if len(rows) >= base.min_rows]
    found: dict[str, dict[str, float]] = {}
    for name, values in columns.items():
        if name not in profile.columns:
            continue
        values = np.asarray(values)
        drift = [column_drift(name, profile.columns[name], values[rows], UNGATED) for rows in windows]
        psi = np.array([d.psi for d in drift if d.rows >= base.min_rows])
        js = np.array([d.js for d in drift if d.rows >= base.min_rows])
        found[name] = {"psi": _line(psi, base.psi, max_alert_rate, margin),
                       "js": _line(js, base.js, max_alert_rate, margin),
                       "windows": len(psi)}
    previous = profile.calibration.columns if profile.calibration else {}
    calibration = Calibration(window_s=window_s, max_alert_rate=max_alert_rate, margin=margin, period=period,
                              windows=len(windows), columns={**previous, **found})
    return replace(profile, calibration=calibration)


def _line(values: np.ndarray, floor: float | None, rate: float, margin: float) -> float:
    """``margin`` x the clean windows' ``1 - rate`` quantile, never below ``floor`` (None: no floor)."""
    lowest = 0.0 if floor is None else floor
    if values.size == 0:
        return lowest
    reached = float(np.quantile(values, 1.0 - rate, method="higher"))
    return round(max(lowest, margin * reached), 6)


def describe(profile: DatasetProfile, base: DriftThresholds = DEFAULT) -> list[dict[str, Any]]:
    """The columns whose thresholds calibration raised above the base, highest PSI line first."""
    if profile.calibration is None:
        return []
    raised = [{"column": name, **lines} for name, lines in profile.calibration.columns.items()
              if (base.psi is not None and lines["psi"] > base.psi) or (base.js is not None and lines["js"] > base.js)]
    return sorted(raised, key=lambda x: -float(x["psi"]))
