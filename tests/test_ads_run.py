"""``mlsd run ads`` on the real datasets (skipped without MLSD_DATA_DIR, which CI sets)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mlsd.cli import main
from mlsd.datasets import TALKINGDATA_SCHEMA
from mlsd.datasets.ctr import load_criteo, load_ipinyou
from mlsd.events import EventLog
from mlsd.features import FeatureStore, OfflineStore, SqliteOnlineStore
from mlsd.serving.feature_log import read_feature_log
from mlsd.serving.skew import skew_check
from mlsd.systems.ads.features import click_views

pytestmark = [pytest.mark.data,
              pytest.mark.skipif(not os.environ.get("MLSD_DATA_DIR"), reason="MLSD_DATA_DIR not set")]


def test_flat_loaders_read_every_row() -> None:
    criteo = load_criteo()
    assert (len(criteo.train), len(criteo.valid), len(criteo.test)) == (7200, 409, 391)
    assert np.isnan(criteo.columns["I12"]).any()  # empty integer cells stay missing
    ipinyou = load_ipinyou()
    assert len(ipinyou.labels) == 26_773 + 21_150
    assert int(ipinyou.labels.sum()) == 305
    present = np.column_stack([ipinyou.columns[f] >= 0 for f in ipinyou.categorical]).sum(axis=1)
    assert present.min() >= 10  # each row's one-hot indices land in their fields


@pytest.mark.slow
def test_run_ads_on_real_data(tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    assert main(["run", "ads", "--home", str(tmp_path / "ads"), "--json", str(out), "--models", "lgbm,logreg",
                 "--quiet"]) == 0
    results = json.loads(out.read_text())
    assert set(results) == {"talkingdata", "criteo", "ipinyou"}
    for models in results.values():
        assert set(models) == {"lgbm", "logreg"}
        assert all({"auc", "logloss", "ne", "calibration"} <= set(m) for m in models.values())
    talking = results["talkingdata"]["lgbm"]
    # Measured 0.9704 / 0.492 / 1.050 (the target AUC is 0.98: see the closing note).
    assert talking["auc"] > 0.96
    assert talking["ne"] < 0.5
    assert abs(talking["calibration"] - 1) < 0.25
    assert results["criteo"]["lgbm"]["auc"] > 0.65


@pytest.mark.slow
def test_talkingdata_replay_has_no_false_alarms_and_catches_the_drift_in_one_window(tmp_path: Path) -> None:
    """The held-out day through HTTP: 16 clean half-hour windows, then a new app takes 30% of clicks."""
    from mlsd.systems.ads.demo import AdsDemo

    summary = AdsDemo(tmp_path / "demo", data=os.environ["MLSD_DATA_DIR"], models=("logreg", "lgbm"),
                      progress=False, drift_at_hours=8.0).run()
    assert summary["dataset"] == "talkingdata"
    assert summary["replay"]["errors"] == 0
    assert summary["windows"] == 32
    assert summary["false_alarms"] == 0  # 41 before calibrated thresholds and expiring windows
    delay = summary["drift_detection_delay_s"]
    assert delay is not None
    assert 1800 <= delay <= 1800 + 120  # the first window after the drift alerts as it closes

    # No training/serving skew: what the service served before the drift is what the point-in-time
    # store computes for the same entities at the same instants (the test day is in the click log).
    home = tmp_path / "demo" / "home"
    clean = [r for r in read_feature_log(home / "feature_log") if r.at_us / 1e6 < summary["drift_at_s"]]
    log = EventLog(home / "events" / "clicks", TALKINGDATA_SCHEMA, writer=False)
    views = click_views(log)
    store = FeatureStore(SqliteOnlineStore(tmp_path / "unused.db"), OfflineStore(), views)
    report = skew_check(clean, store, [v.name for v in views], sample=2000)
    log.close()
    assert report.cells > 30_000
    assert report.mismatches == 0, report.by_feature
