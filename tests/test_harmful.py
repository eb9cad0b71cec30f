"""Harmful content detection: the paper's split, the decision rule, safe model files, the whole loop.

The loop runs on a small slice of the real data with ``MLSD_DATA_DIR``, on generated posts without it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from mlsd.monitoring.outcomes import online_metrics
from mlsd.monitoring.runner import read_state
from mlsd.serving.validation import Field, RequestError, validate
from mlsd.system import RunConfig, Workspace
from mlsd.systems.harmful.data import HATE, NEITHER, OFFENSIVE, paper_split, soft_targets
from mlsd.systems.harmful.model import Decision, HarmfulClassifier, LinearHead, Tfidf
from mlsd.testing import check_system

DATA = os.environ.get("MLSD_DATA_DIR")
needs_data = pytest.mark.skipif(not DATA, reason="MLSD_DATA_DIR not set")


def test_the_decision_rule_removes_hate_first_then_demotes_offensive() -> None:
    decision = Decision(t_hate=0.3, t_offensive=0.6)
    proba = np.array([[0.35, 0.6, 0.05], [0.2, 0.7, 0.1], [0.2, 0.5, 0.3], [0.29, 0.1, 0.61]])
    assert decision.classes(proba).tolist() == [HATE, OFFENSIVE, NEITHER, NEITHER]


def test_generated_posts_stand_in_without_a_data_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlsd.systems.harmful.data import generated_posts, load_posts

    monkeypatch.delenv("MLSD_DATA_DIR", raising=False)
    posts = load_posts(None)
    assert posts.source == "generated"
    assert posts.texts == generated_posts().texts  # seeded
    shares = np.bincount(posts.labels, minlength=3) / len(posts)
    assert np.allclose(shares, [0.06, 0.77, 0.17], atol=0.02)
    assert all("slur_" in t for t, y in zip(posts.texts, posts.labels, strict=True) if y == HATE)
    assert (posts.votes.argmax(axis=1) == posts.labels).all()


def test_soft_targets_are_vote_shares() -> None:
    assert np.allclose(soft_targets(np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])), [[1 / 3, 2 / 3, 0], [0, 0, 1]])


def test_a_tfidf_classifier_saves_as_safe_files_and_loads_the_same(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    words = [["hate", "vile", "scum"], ["damn", "stupid", "crap"], ["sunny", "lunch", "game"]]
    labels = rng.integers(0, 3, 300)
    texts = [" ".join(rng.choice(words[y], 3)) + f" filler{rng.integers(5)}" for y in labels]
    tfidf = Tfidf.fit(texts)
    head = LinearHead.fit(tfidf.transform(texts), labels, c=3.0)
    raw = head.proba(tfidf.transform(texts))
    calibration = LinearHead.fit(np.log(np.clip(raw, 1e-7, 1)), labels, c=10.0)
    model = HarmfulClassifier("tfidf_lr", Decision(calibration, 0.4, 0.5), tfidf=tfidf, tfidf_head=head)
    model.save(tmp_path / "model")
    assert not list((tmp_path / "model").glob("*.pkl"))
    loaded = HarmfulClassifier.load(tmp_path / "model")
    probe = ["vile scum filler1", "a sunny lunch", "stupid crap filler3 unseen"]
    assert np.allclose(loaded.proba(probe), model.proba(probe))
    assert loaded.classify(probe)[1].tolist() == [HATE, NEITHER, OFFENSIVE]


def test_online_precision_and_recall_at_the_served_threshold() -> None:
    y, p = np.array([1.0, 0, 1, 0, 0]), np.array([0.9, 0.8, 0.2, 0.1, 0.05])
    metrics = online_metrics(y, p, threshold=0.5)
    assert metrics["precision"] == 0.5
    assert metrics["recall"] == 0.5
    assert "precision" not in online_metrics(y, p)


def test_string_lengths_are_bounds_of_the_request_schema() -> None:
    from mlsd.serving.decode import BodyDecoder
    from mlsd.serving.validation import json_schema

    schema = {"text": Field("string", min_items=1, max_items=5)}
    assert validate({"text": "hello"}, schema) == {"text": "hello"}
    for bad in ("hello!", ""):
        with pytest.raises(RequestError) as refused:
            validate({"text": bad}, schema)
        assert refused.value.errors[0]["field"] == "text"
    assert json_schema(schema)["properties"]["text"] | {"minLength": 1, "maxLength": 5} == \
        json_schema(schema)["properties"]["text"]
    decoder = BodyDecoder(schema)
    assert decoder.decode(b'{"text": "hi"}') == {"text": "hi"}


@pytest.mark.data
@needs_data
def test_the_paper_split_is_the_notebooks() -> None:
    from mlsd.systems.harmful.data import load_posts

    posts = load_posts(DATA)
    split = paper_split(posts.labels)
    assert np.bincount(posts.labels[split.test]).tolist() == [164, 1905, 410]  # the published counts
    assert len(np.intersect1d(np.concatenate([split.train, split.valid]), split.test)) == 0
    assert len(split.valid) == 2231
    assert len(np.intersect1d(split.train, split.valid)) == 0


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from mlsd.system import load_system

    home = tmp_path_factory.mktemp("harmful")
    system = load_system("harmful")
    # the quick build, with a second fine-tuning seed (a few seconds on the quick build's 400 posts)
    built = system.build(Workspace(home), RunConfig(data=DATA, progress=False, small=True,
                                                    options={"finetune_seeds": 2}))
    return home, check_system(system, home, data=DATA, replay_requests=200, built=built)


@pytest.mark.slow
def test_further_fine_tuning_seeds_are_reported_as_a_spread(checked: tuple[Path, dict[str, Any]]) -> None:
    from mlsd.systems.harmful.system import SYSTEM

    home, _ = checked
    run = json.loads((home / "run.json").read_text())
    for family in ("minilm_finetuned", "blend_minilm_finetuned"):
        spread = run["finetune_seeds"][family]
        assert spread["seeds"] == [0, 1]
        assert spread["hate_f1"][0] == run["models"][family]["hate"]["f1"]  # seed 0 is the registered fit
        assert spread["hate_f1_mean"] == pytest.approx(np.mean(spread["hate_f1"]))
        assert spread["weighted_f1_sd"] == pytest.approx(np.std(spread["weighted_f1"], ddof=1))
    assert "fine-tuning seeds 0, 1" in SYSTEM.format_results(run)
    assert SYSTEM.json_summary(run)["finetune_seeds"] == run["finetune_seeds"]
    encoders = sorted(p.name for p in (home / "encoders").iterdir())
    assert encoders == ["minilm-finetuned"]  # the served seed's; the other seed's encoder is deleted


@pytest.mark.slow
def test_check_system_harmful_and_the_monitor_sees_the_offline_precision(checked: tuple[Path, dict[str, Any]]
                                                                          ) -> None:
    home, facts = checked
    assert {i["action"] for i in facts["answer"]["items"]} <= {"remove", "demote", "allow"}
    run = json.loads((home / "run.json").read_text())
    served = run["models"][run["served"]["champion_family"]]["hate"]
    windows = read_state(home / "monitoring")["windows"]
    online = [w["labels"]["all"] for w in windows]
    positives = sum(int(w["positives"]) for w in online)
    hits = sum(round((w["recall"] or 0) * w["positives"]) for w in online)
    assert positives == served["support"]  # every test post's moderator decision came back
    assert abs(hits - round(served["recall"] * served["support"])) <= 1  # the same posts through HTTP
    shares = [w["drift"]["predicted_class"]["shares"] for w in windows if "predicted_class" in w["drift"]]
    assert shares
    assert all(abs(sum(s.values()) - 1) < 1e-4 for s in shares)


@pytest.mark.slow
def test_the_service_refuses_hostile_posts_by_field(checked: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    from mlsd.serving.app import create_app
    from mlsd.serving.feature_log import FeatureLog
    from mlsd.systems.harmful.serve import HarmfulService

    home, _ = checked
    service = HarmfulService(home, poll_interval=3600)
    with TestClient(create_app(service, FeatureLog(tmp_path / "log"))) as client:  # type: ignore[arg-type]
        for body, field in (({"items": [{"id": "1", "text": "x" * 2001}]}, "items[0].text"),
                            ({"items": [{"id": "", "text": "hi"}]}, "items[0].id"),
                            ({"items": [{"id": str(i), "text": "hi"} for i in range(65)]}, "items"),
                            ({"items": []}, "items")):
            answer = client.post("/v1/harmful/classify", json=body)
            assert answer.status_code == 422, answer.text
            assert field in answer.text
        ok = client.post("/v1/harmful/classify", json={"items": [{"id": "a", "text": "have a lovely day"},
                                                                  {"id": "b", "text": "🙂" * 50}]})
        assert ok.status_code == 200
        items = ok.json()["items"]
        assert all(abs(sum(i["probabilities"].values()) - 1) < 1e-5 for i in items)
        assert items[0]["action"] == "allow"


@pytest.mark.slow
def test_every_route_agrees_with_its_openapi_document(checked: tuple[Path, dict[str, Any]]) -> None:
    from mlsd.lifecycle.serve import build_app
    from tests.fuzzing import fuzz_every_route

    assert "POST /v1/harmful/classify" in fuzz_every_route(build_app("harmful", checked[0]))
