"""Visual search: retrieval metrics by hand, the model's safe files, the whole loop, hostile images."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from mlsd.evaluation.retrieval import retrieval_per_query, retrieval_report
from mlsd.monitoring.runner import read_state
from mlsd.systems.visual.model import Projection, VisualSearchModel, l2
from mlsd.testing import check_system

DATA = os.environ.get("MLSD_DATA_DIR")
needs_data = pytest.mark.skipif(not DATA, reason="MLSD_DATA_DIR not set")


def test_retrieval_metrics_by_hand() -> None:
    query = np.array(["shirt", "watch"])
    retrieved = np.array([["shirt", "jeans", "shirt"], ["jeans", "jeans", "jeans"]])
    m = retrieval_per_query(query, retrieved, np.array([5, 1]), k=3)
    assert m["precision@1"].tolist() == [1.0, 0.0]
    assert np.allclose(m["precision@3"], [2 / 3, 0.0])
    assert np.allclose(m["map@3"], [(1 + 2 / 3) / 3, 0.0])  # precision at ranks 1 and 3, over min(3, 5)
    assert m["recall@3"].tolist() == [1.0, 0.0]
    report = retrieval_report(query, retrieved, np.array(["shirt"] * 5 + ["watch"]), k=3)
    assert report["queries"] == 2
    assert report["precision@1"] == 0.5


def test_a_visual_model_saves_its_index_and_projection_and_loads_the_same(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    raw = np.abs(rng.normal(size=(50, 16))).astype(np.float32)
    def member(out: int) -> list[np.ndarray]:
        return [rng.normal(size=(16, 8)).astype(np.float32), np.zeros(8, np.float32),
                rng.normal(size=(8, out)).astype(np.float32), np.zeros(out, np.float32)]

    projection = Projection(l2(raw).mean(axis=0), member(4) + member(3), alpha=0.5)  # an ensemble of two
    assert projection.dim == 7
    assert projection(raw).shape == (50, 16 + 7)
    one = Projection(projection.mean, projection.weights[:4])
    assert np.allclose(one(raw), l2(np.maximum((l2(raw) - one.mean) @ one.weights[0], 0) @ one.weights[2]), atol=1e-6)
    model = VisualSearchModel.build("projected", "enc@1", projection, raw, np.arange(50) + 100, ["t"] * 50,
                                    ["c"] * 50, ["n"] * 50, {"k": 5})
    model.save(tmp_path / "m")
    loaded = VisualSearchModel.load(tmp_path / "m")
    for a, b in zip(model.search(raw[:3], 5), loaded.search(raw[:3], 5), strict=True):
        assert np.allclose(a, b)
    assert model.search(raw[:1], 1)[1][0, 0] == 0  # an image's nearest gallery product is itself
    assert loaded.product_ids[0] == 100
    assert loaded.index.size == 50
    assert len(loaded.projection.members()) == 2
    assert json.loads((tmp_path / "m" / "visual.json").read_text())["members"] == 2


def _b64_jpeg(side: int) -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), 200, np.uint8)).save(out, format="JPEG")
    return base64.b64encode(out.getvalue()).decode()


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from mlsd.system import RunConfig, Workspace, load_system

    home = tmp_path_factory.mktemp("visual")
    system = load_system("visual")  # GeM: the option with more moving parts than the default average pool
    config = RunConfig(data=DATA, progress=False, small=True, options={"pooling": "gem"})
    return home, check_system(system, home, data=DATA, replay_requests=200, built=system.build(Workspace(home), config))


@pytest.mark.slow
@pytest.mark.data
@needs_data
def test_check_system_visual_and_the_monitor_sees_the_offline_hit_rate(checked: tuple[Path, dict[str, Any]]) -> None:
    home, facts = checked
    assert len(facts["answer"]["ranked"]) == 10
    run = json.loads((home / "run.json").read_text())
    # served on GeM features: the service built its encoder from the home's description, and a model's
    # encoder version must equal it (VisualService refuses one built on another), so the answers below
    # could not match the offline ones with the wrong pooling
    assert run["pooling"] == "gem"
    assert json.loads((home / "encoders" / "encoder.json").read_text())["version"] == run["encoder"]
    served = run["models"][run["served"]["champion_family"]]["article_type"]
    windows = read_state(home / "monitoring")["windows"]
    rows = np.array([w["labels"]["all"]["rows"] for w in windows], float)
    hits = np.array([w["labels"]["all"]["hit@10"] for w in windows], float)
    # every held-out query through HTTP (plus the kit's own first request, unlabelled): the same hits
    assert rows.sum() == run["queries"] + 1
    assert abs((rows * hits).sum() - served["recall@10"] * run["queries"]) <= 1


@pytest.mark.slow
@pytest.mark.data
@needs_data
def test_the_service_names_what_is_wrong_with_an_image(checked: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    from mlsd.serving.app import create_app
    from mlsd.serving.feature_log import FeatureLog
    from mlsd.systems.visual.serve import VisualService

    home, _ = checked
    with TestClient(create_app(VisualService(home, poll_interval=3600),  # type: ignore[arg-type]
                               FeatureLog(tmp_path / "log"))) as client:
        for image, problem in (("%%% not base64 %%%", "not base64"),
                               (base64.b64encode(b"plain text, no image").decode(), "not a readable image"),
                               (_b64_jpeg(8), "smaller than")):
            answer = client.post("/v1/visual/search", json={"image": image})
            assert answer.status_code == 422, answer.text
            assert "image" in answer.text
            assert problem in answer.text
        ok = client.post("/v1/visual/search", json={"image": _b64_jpeg(300), "k": 3})
        assert ok.status_code == 200
        assert len(ok.json()["ranked"]) == 3
        # the same image as a file upload: the same answer
        form = client.post("/v1/visual/search", files={"image": ("q.jpg", base64.b64decode(_b64_jpeg(300)))},
                           data={"k": "3"})
        assert form.status_code == 200, form.text
        assert form.json()["ranked"] == ok.json()["ranked"]
        not_image = client.post("/v1/visual/search", files={"image": ("q.jpg", b"plain text")})
        assert not_image.status_code == 422
        assert not_image.json()["errors"][0]["field"] == "image"


@pytest.mark.slow
@pytest.mark.data
@needs_data
def test_every_route_agrees_with_its_openapi_document(checked: tuple[Path, dict[str, Any]]) -> None:
    from schemathesis.checks import positive_data_acceptance

    from mlsd.lifecycle.serve import build_app
    from tests.fuzzing import fuzz_every_route

    # A string the schema allows is rarely an image: a 422 naming `image` is the right answer to it.
    assert "POST /v1/visual/search" in fuzz_every_route(build_app("visual", checked[0]), (positive_data_acceptance,))
