"""The ads system end to end on generated clicks: MLflow registry, HTTP service, feature log, skew, hot swap."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from starlette.testclient import TestClient

from mlsd.datasets.marketplace import AdMarketplace, click_log
from mlsd.registry import CHALLENGER, CHAMPION, ModelRegistry
from mlsd.serving.app import create_app
from mlsd.serving.feature_log import FeatureLog, read_feature_log
from mlsd.serving.skew import skew_check
from mlsd.systems.ads.run import AdsRun, model_name
from mlsd.systems.ads.service import AdsService

NAME = model_name("talkingdata")


@pytest.fixture(scope="module")
def ads_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ads")
    AdsRun(home, clicks=click_log(AdMarketplace(4), 30_000, days=4.0), models=("lgbm", "logreg"), progress=False,
           flat_datasets=False).run()
    return home


@pytest.fixture
def service(ads_home: Path) -> Iterator[AdsService]:
    svc = AdsService(ads_home, poll_interval=3600)
    registry = svc.registry
    registry.set_alias(NAME, CHAMPION, svc.models.version)  # undo swaps from earlier tests
    yield svc
    svc.close()


@pytest.fixture
def client(service: AdsService, ads_home: Path, tmp_path: Path) -> Iterator[TestClient]:
    log = FeatureLog(tmp_path / "feature_log", flush_interval=0.01)
    with TestClient(create_app(service, log, max_in_flight=8)) as test_client:  # type: ignore[arg-type]
        yield test_client


def _end_s(service: AdsService) -> float:
    end_us = pc.max(pc.cast(service.log.read(["click_time"]).column("click_time"), pa.int64())).as_py()
    return float(end_us) / 1e6 + 1e-6  # just after the last click: the online state's instant


def _body(service: AdsService, n: int = 3, seed: int = 0) -> dict[str, Any]:
    table = service.log.read(["ip", "app", "device", "os", "channel"])
    clicks = table.slice(max(0, table.num_rows - 5000)).to_pylist()  # recent entities: their windows are not empty
    rng = np.random.default_rng(seed)
    c = clicks[rng.integers(len(clicks))]
    candidates = [{"app": clicks[i]["app"], "channel": clicks[i]["channel"]} for i in rng.integers(len(clicks), size=n)]
    candidates[-1] = {"app": 99_999, "channel": 7}  # an ad the log never saw
    return {"timestamp": _end_s(service), "context": {k: c[k] for k in ("ip", "device", "os")},
            "candidates": candidates}


def test_registry_holds_versions_with_lineage_and_aliases(ads_home: Path) -> None:
    registry = ModelRegistry(ads_home)
    champion = registry.describe(NAME, registry.version_for(NAME, CHAMPION))
    challenger = registry.describe(NAME, registry.version_for(NAME, CHALLENGER))
    assert champion.version != challenger.version
    for version in (champion, challenger):
        assert len(version.tags["mlsd.data_fingerprint"]) == 64
        assert "ip_clicks:v1" in version.tags["mlsd.feature_views"]
        assert version.tags["mlsd.code_revision"]
    run = registry.client.get_run(champion.run_id)
    assert "test_auc" in run.data.metrics
    assert run.data.params["kind"] in ("lgbm", "logreg")
    pipeline, loaded = registry.load(NAME, alias=CHAMPION)
    assert loaded == champion.version
    assert pipeline.model.kind == run.data.params["kind"]


def test_scores_rank_candidates_and_log_exact_features(client: TestClient, service: AdsService,
                                                       tmp_path: Path) -> None:
    body = _body(service, n=20)
    response = client.post("/v1/ads/score", json=body | {"request_id": "r-1"})
    assert response.status_code == 200, response.text
    ranked = response.json()["ranked"]
    probabilities = [r["probability"] for r in ranked]
    assert len(ranked) == 20
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0 < p < 1 for p in probabilities)
    # Same answer as the pipeline on the features the service built.
    pipeline, _ = service.models.current
    expected = np.sort(pipeline.predict(service.features(body)[1]))[::-1]
    assert np.allclose(probabilities, expected)
    for i in range(15):
        assert client.post("/v1/ads/score", json=_body(service, n=4, seed=i + 1)).status_code == 200
    deadline = time.monotonic() + 5
    records = list(read_feature_log(tmp_path / "feature_log"))
    while len(records) < 16 and time.monotonic() < deadline:  # the writer thread flushes every 10 ms here
        time.sleep(0.02)
        records = list(read_feature_log(tmp_path / "feature_log"))
    assert len(records) == 16
    assert records[0].request_id == "r-1"
    assert records[0].predictions == pytest.approx(pipeline.predict(service.features(body)[1]).tolist())
    report = skew_check(records, service.store, service.view_names)
    assert report.rows == 20 + 15 * 4
    assert report.cells > 1000
    assert report.mismatches == 0, report.by_feature


def test_skew_check_detects_a_stale_online_store(service: AdsService) -> None:
    body = _body(service, n=30, seed=3)
    body["timestamp"] += 2 * 86400  # two days later every 1 d window should be empty, but the store is stale
    _, record = service.score(body, "late")
    report = skew_check([record], service.store, service.view_names)
    assert report.mismatches > 0
    assert any(name.endswith("_1d") for name in report.by_feature)


BAD_REQUESTS = [
    ({"context": {"ip": 1, "device": 1, "os": 1}}, "candidates", "required"),
    ({"context": {"ip": 1, "device": 1, "os": 1}, "candidates": []}, "candidates", "at least 1"),
    ({"context": {"ip": 1, "device": 1, "os": 1}, "candidates": [{"app": 1, "channel": 1}] * 501}, "candidates",
     "at most 500"),
    ({"context": {"ip": "1", "device": 1, "os": 1}, "candidates": [{"app": 1, "channel": 1}]}, "context.ip",
     "expected integer"),
    ({"context": {"ip": 1, "device": 1, "os": 1}, "candidates": [{"app": 1, "channel": True}]},
     "candidates[0].channel", "expected integer"),
    ({"context": {"ip": 1, "device": 1, "os": 1}, "candidates": [{"app": 1, "channel": 1, "bid": 2}]},
     "candidates[0].bid", "unknown field"),
    ({"context": {"ip": -5, "device": 1, "os": 1}, "candidates": [{"app": 1, "channel": 1}]}, "context.ip", ">= 0"),
    ({"ctx": {}, "context": {"ip": 1, "device": 1, "os": 1}, "candidates": [{"app": 1, "channel": 1}]}, "ctx",
     "unknown field"),
    ([1, 2], "$", "JSON object"),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD_REQUESTS)
def test_bad_requests_get_field_level_4xx(client: TestClient, body: Any, field: str, message: str) -> None:
    response = client.post("/v1/ads/score", json=body)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert any(e["field"] == field and message in e["message"] for e in errors), errors


def test_malformed_json_health_metrics_and_openapi(client: TestClient, service: AdsService) -> None:
    json_type = {"content-type": "application/json"}
    assert client.post("/v1/ads/score", content=b"{nope", headers=json_type).status_code == 400
    assert client.post("/v1/ads/score", content=b"\xff\xfe", headers=json_type).status_code == 400
    health = client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["model_version"] == service.model_version
    client.post("/v1/ads/score", json=_body(service))
    text = client.get("/metrics").text
    assert 'mlsd_requests_total{status="400"} 2.0' in text
    assert 'mlsd_requests_total{status="200"} 1.0' in text
    spec = client.get("/openapi.json").json()
    schema = spec["paths"]["/v1/ads/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["candidates"]["maxItems"] == 500


def test_load_shedding_answers_503_fast(service: AdsService, tmp_path: Path) -> None:
    app = create_app(service, FeatureLog(tmp_path / "log"), max_in_flight=1)  # type: ignore[arg-type]
    admission = app.state.admission  # type: ignore[attr-defined]
    admission.queued = 1  # a request already waits: the queue is full
    with TestClient(app) as shed:
        response = shed.post("/v1/ads/score", json=_body(service))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert shed.get("/healthz").status_code == 200  # only the scoring route is shed


def test_hot_swap_changes_version_without_failing_requests(client: TestClient, service: AdsService) -> None:
    registry = service.registry
    first = service.models.version
    other = registry.version_for(NAME, CHALLENGER)
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            response = client.post("/v1/ads/score", json=_body(service, n=2))
            statuses.append(response.status_code)
            versions.add(response.json().get("model_version", "?"))

    worker = threading.Thread(target=hammer)
    worker.start()
    for target in (other, first, other):
        registry.set_alias(NAME, CHAMPION, target)
        assert service.models.check()
    stop.set()
    worker.join()
    assert service.models.version == other
    assert service.models.swaps == 3
    assert statuses
    assert set(statuses) == {200}
    assert versions <= {first, other}
    assert client.post("/v1/ads/score", json=_body(service)).json()["model_version"] == other


@pytest.mark.slow
def test_mlsd_serve_runs_two_worker_processes(ads_home: Path) -> None:
    """The CLI server as a user starts it: two uvicorn workers, scoring over real HTTP, logs on disk."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "mlsd.cli", "serve", "ads", "--home", str(ads_home),
                               "--port", str(port), "--workers", "2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read())
                break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.3)
        assert health["status"] == "ok"
        svc = AdsService(ads_home, poll_interval=3600)
        body = json.dumps(_body(svc, n=5) | {"request_id": "over-http"}).encode()
        svc.close()
        for _ in range(10):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/ads/score", data=body,
                                             headers={"Content-Type": "application/json"})
            answer = json.loads(urllib.request.urlopen(request, timeout=5).read())
            assert len(answer["ranked"]) == 5
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    logged = [r for r in read_feature_log(ads_home / "feature_log") if r.request_id == "over-http"]
    assert len(logged) == 10  # every response reached the log before the workers exited


def test_serving_processes_cap_every_compute_pool_at_one_thread() -> None:
    script = ("import json, numpy, torch, lightgbm; from threadpoolctl import threadpool_info; "
              "from mlsd.serving.threads import limit_compute_threads; limit_compute_threads(1); "
              "print(json.dumps({'torch': torch.get_num_threads(), "
              "'pools': [p['num_threads'] for p in threadpool_info()]}))")
    out = json.loads(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                                    text=True).stdout.strip().splitlines()[-1])
    assert out["torch"] == 1
    assert out["pools"]  # BLAS (numpy) and OpenMP (torch, LightGBM, FAISS) were found
    assert set(out["pools"]) == {1}


def test_body_decoder_names_fields_and_enforces_what_openapi_says() -> None:
    """The msgspec decoder keeps the schema's rules: enums, bounds, no NaN, null as absent."""
    from mlsd.serving.decode import BodyDecoder, BodyError
    from mlsd.serving.validation import Field, RequestError

    decoder = BodyDecoder({"user_id": Field("integer", minimum=0), "k": Field("integer", required=False, maximum=5),
                           "context": Field("object", required=False, properties={
                               "gender": Field("string", required=False, extra={"enum": ["M", "F"]})})})
    assert decoder.decode(b'{"user_id": 3, "k": null}') == {"user_id": 3}  # null: as if absent
    for raw, field, words in ((b'{"user_id": 1, "context": {"gender": "X"}}', "context.gender", "allowed values"),
                              (b'{"user_id": 1.5}', "user_id", "expected integer, got number"),
                              (b'{"user_id": 1, "k": 6}', "k", "must be <= 5"),
                              (b'{"k": 1}', "user_id", "required field is missing"),
                              (b'{"user_id": 1, "context": {"age": 3}}', "context.age", "unknown field")):
        with pytest.raises(RequestError) as caught:
            decoder.decode(raw)
        assert caught.value.errors[0]["field"] == field, raw
        assert words in caught.value.errors[0]["message"], raw
    with pytest.raises(BodyError):
        decoder.decode(b'{"user_id": NaN}')
