"""``mlsd run ads`` on the real datasets (skipped without MLSD_DATA_DIR, which CI sets)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mlsd.cli import main
from mlsd.datasets.ctr import load_criteo, load_ipinyou

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
