"""The walkthrough end to end, and the dataset loader's checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlsd.core.errors import DataNotFoundError
from mlsd.datasets import locate
from mlsd.systems.ads.walkthrough import Walkthrough


def test_missing_dataset_names_files_and_source(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"missing: .*train_sample\.csv.*kaggle"):
        locate("talkingdata", tmp_path)


def test_altered_dataset_fails_its_checksum(tmp_path: Path) -> None:
    (tmp_path / "talkingdata-sample").mkdir()
    (tmp_path / "talkingdata-sample" / "train_sample.csv").write_text("ip,app\n1,2\n")
    with pytest.raises(DataNotFoundError, match="checksum mismatch"):
        locate("talkingdata", tmp_path)


@pytest.mark.slow
def test_walkthrough_on_generated_clicks(tmp_path: Path) -> None:
    summary = Walkthrough(home=tmp_path / "w", data=str(tmp_path / "no-data"), progress=False,
                          synthetic_rows=20_000).run()
    assert summary["ingest"]["accepted"] == 20_000
    assert summary["ingest"]["reingest_added"] == 0
    assert summary["stream"]["events"] == 20_000
    assert summary["online_vs_offline"]["mismatches"] == 0


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not os.environ.get("MLSD_DATA_DIR"), reason="MLSD_DATA_DIR not set")
def test_walkthrough_on_talkingdata(tmp_path: Path) -> None:
    summary = Walkthrough(home=tmp_path / "w", progress=False).run()
    assert summary["ingest"]["accepted"] == 100_000
    assert summary["training_frame"]["rows"] == 100_000
    assert summary["online_vs_offline"]["mismatches"] == 0
