"""Monitoring: reference profiles, drift statistics, the online monitor (windows, alerts, online metrics)."""

from mlsd.monitoring.drift import ColumnDrift, DriftThresholds, column_drift, detect_drift
from mlsd.monitoring.online import MonitorConfig, OnlineMonitor
from mlsd.monitoring.outcomes import online_metrics
from mlsd.monitoring.profile import CategoricalProfile, DatasetProfile, NumericProfile

__all__ = ["CategoricalProfile", "ColumnDrift", "DatasetProfile", "DriftThresholds", "MonitorConfig",
           "NumericProfile", "OnlineMonitor", "column_drift", "detect_drift", "online_metrics"]
