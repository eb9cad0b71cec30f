"""The System API: the registry, the CLI over every system, the check kit, LETOR metrics, the ranking monitor."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mlsd.cli import main
from mlsd.core.records import FeatureLogRecord
from mlsd.evaluation.query_ranking import query_scores, ranking_report
from mlsd.monitoring.online import MonitorConfig, OnlineMonitor
from mlsd.monitoring.profile import DatasetProfile
from mlsd.reporting import DesignReport
from mlsd.system import System, TaskType, load_system, system_names
from mlsd.testing import check_system
from tests.conftest import QuickBuilds

DATA = os.environ.get("MLSD_DATA_DIR")
needs_data = pytest.mark.skipif(not DATA, reason="MLSD_DATA_DIR not set")


def test_every_system_is_registered_and_lazy(capsys: pytest.CaptureFixture[str]) -> None:
    assert {"ads", "recs", "search"} <= set(system_names())
    for name in system_names():
        system = load_system(name)
        assert isinstance(system, System)
        assert isinstance(system.task, TaskType)
        assert system.route.startswith("/v1/")
    assert main(["systems", "--json"]) == 0
    listed = {row["system"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["search"]["task"] == "ranking"
    assert listed["ads"]["task"] == "binary"


def test_unknown_system_is_a_clear_error() -> None:
    from mlsd.core.errors import MlsdError

    with pytest.raises(MlsdError, match="unknown system 'nonesuch'; registered systems: ads"):
        load_system("nonesuch")
    with pytest.raises(SystemExit):
        main(["run", "nonesuch"])


def test_cli_help_imports_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, mlsd.cli as c; c.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_design_report_has_the_seven_steps_in_order() -> None:
    from mlsd.core.errors import MlsdError

    report = DesignReport("t")
    report.step(1)
    with pytest.raises(MlsdError, match="step 3 after step 1"):
        report.step(3)
    with pytest.raises(MlsdError, match="1 of 7 steps"):
        report.render()


def test_letor_metrics_by_hand() -> None:
    labels, scores = np.array([0, 2, 1, 0]), np.array([0.9, 0.8, 0.1, 0.0])
    m = query_scores(labels, scores, ks=(1, 3, 5))
    d = 1 / np.log2(np.arange(2, 6))
    # ranked labels 0, 2, 1, 0; ideal 2, 1, 0, 0
    assert m["ndcg@1"] == 0.0
    assert m["ndcg@3"] == pytest.approx((2 * d[1] + 1 * d[2]) / (2 * d[0] + 1 * d[1]))
    assert m["ndcg@3_letor"] == pytest.approx((3 * d[1] + 1 * d[2]) / (3 * d[0] + 1 * d[1]))
    assert m["ndcg@5"] == pytest.approx(m["ndcg@3"])  # truncated at the query's 4 documents
    assert m["ndcg@5_letor"] == 0.0  # fewer than 5 documents: 0 on LETOR's scale
    assert m["map_letor"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["mrr"] == pytest.approx(1 / 2)
    # no relevant document: every metric 0; ties keep the file order
    assert set(query_scores(np.zeros(3), np.ones(3)).values()) == {0.0}
    assert query_scores(np.array([0, 1]), np.array([1.0, 1.0]))["mrr"] == pytest.approx(0.5)
    report = ranking_report(np.array([0, 2, 1, 0, 1, 0]), np.array([0.9, 0.8, 0.1, 0.0, 1.0, 0.5]), np.array([4, 2]))
    assert report["mrr"] == pytest.approx((0.5 + 1.0) / 2)


def test_ranking_monitor_scores_shown_lists_from_item_labels() -> None:
    profile = DatasetProfile.build({"x": np.random.default_rng(0).normal(size=500)})
    monitor = OnlineMonitor(profile, MonitorConfig(window_s=100, label_delay_s=10, task="ranking", k=2))
    # items are logged in the order shown, whatever their scores (a re-ranker may reorder them)
    records = [FeatureLogRecord(request_id="a", at_us=5_000_000, model_version="1", features={"x": [0.2, 0.3, 0.1]},
                                items=["d2", "d3", "d1"], predictions=[0.9, 0.4, 0.5]),  # shown d2, d3
               FeatureLogRecord(request_id="b", at_us=6_000_000, model_version="1", features={"x": [0.0, 0.1]},
                                items=["d1", "d2"], predictions=[0.2, 0.1])]
    monitor.add_records(records)
    monitor.add_labels([{"request_id": "a", "item": "d3", "label": 1}, {"request_id": "a", "item": "d1", "label": 2}],
                       watermark_s=500)
    window = monitor.state()["windows"][0]["labels"]["all"]
    d = 1 / np.log2([2, 3])
    ndcg_a = (1 * d[1]) / (2 * d[0] + 1 * d[1])
    assert window["rows"] == 2
    assert window["ndcg@2"] == pytest.approx(ndcg_a / 2)  # request b got no label: it counts 0
    assert window["hit@2"] == pytest.approx(0.5)
    assert window["mrr"] == pytest.approx(0.25)


@pytest.mark.slow
def test_check_system_ads(tmp_path: Path) -> None:
    facts = check_system(load_system("ads"), tmp_path / "ads")
    assert facts["monitor"]["windows"] >= 1
    assert facts["replay"]["requests"] == 40  # the replay's limit holds on the generated marketplace too


@pytest.mark.slow
@pytest.mark.data
@needs_data
def test_check_system_recs(quick_builds: QuickBuilds) -> None:
    """Recs on the lifecycle: served as of protocol B's cut-off, replayed users' later ratings as labels."""
    home, results = quick_builds.copy("recs")
    facts = check_system(load_system("recs"), home, data=DATA, built=results)
    assert facts["monitor"]["rows"] == 40  # every replayed user's list was scored from their later ratings
    run = json.loads((home / "run.json").read_text())
    served = run["served"]
    assert {served["champion"], served["challenger"]} == set(served["versions"])
    # everything the service starts from is older than the replayed requests
    assert facts["replay"]["first_at_s"] >= served["cut_off_s"]


@pytest.mark.slow
@pytest.mark.data
@needs_data
def test_check_system_search(quick_builds: QuickBuilds) -> None:
    home, results = quick_builds.copy("search")
    facts = check_system(load_system("search"), home, data=DATA, built=results)
    online = facts["monitor"]["online"]
    assert online["rows"] == 40
    assert 0.2 < online["ndcg@10"] <= 1.0
    run = json.loads((home / "run.json").read_text())
    assert run["folds"][0]["ndcg@10"] > 0.45


@pytest.mark.slow
@pytest.mark.data
@needs_data
def test_search_service_ranks_unknown_documents_and_names_bad_fields(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from mlsd.lifecycle.serve import build_app
    from mlsd.system import RunConfig, Workspace

    system = load_system("search")
    system.build(Workspace(tmp_path), RunConfig(data=DATA, progress=False, small=True))
    features = {f"f{i}": 0.5 for i in range(1, 47)}
    with TestClient(build_app("search", tmp_path)) as client:
        ok = client.post(system.route, json={"query_id": 999_999, "documents": [
            {"doc_id": "new-1", "features": features}, {"doc_id": "new-2", "features": {**features, "f1": 1.0}}]})
        assert ok.status_code == 200
        assert len(ok.json()["ranked"]) == 2
        unknown = client.post(system.route, json={"query_id": 999_999, "documents": [{"doc_id": "nowhere"}]})
        assert unknown.status_code == 404  # well formed, about a document the store does not know
        assert "documents[0].features" in unknown.text
        bad = client.post(system.route, json={"query_id": -1, "documents": []})
        assert bad.status_code == 422
        assert {e["field"] for e in bad.json()["errors"]} == {"query_id", "documents"}
