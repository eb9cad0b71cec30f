"""The Ray engine: the same frames, models and answers as the embedded path (tests marked ``ray``)."""

from __future__ import annotations

import itertools
import json
import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlsd.core.errors import DefinitionError
from mlsd.core.timeutil import TIMESTAMP
from mlsd.events import EventLog
from mlsd.features import (
    Aggregation,
    AggregationView,
    Entity,
    EventLogSource,
    Feature,
    FeatureView,
    OfflineStore,
    OnDemandView,
    TableSource,
    vector_feature,
)
from mlsd.scale.features import RayOfflineStore
from tests.test_point_in_time import (
    BASE_US,
    SCHEMA,
    S,
    check_aggregates,
    check_feature_view_join,
    event_rows,
    feature_rows,
    label_rows,
)

# Few buckets and tiny shards, so every case crosses bucket and shard boundaries.
RAY_STORE = RayOfflineStore(buckets=3, shard_rows=7)


@pytest.mark.ray
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(rows=feature_rows, labels=label_rows, ttl_s=st.one_of(st.none(), st.integers(0, 15)))
def test_ray_feature_view_join_matches_brute_force(ray_cluster: None, rows: list[tuple[int, int, int, float]],
                                                   labels: list[tuple[int, int]], ttl_s: int | None) -> None:
    check_feature_view_join(RAY_STORE, rows, labels, ttl_s)


@pytest.mark.ray
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(rows=event_rows, labels=label_rows)
def test_ray_aggregates_match_brute_force(ray_cluster: None, rows: list[tuple[int, int, int, int, bool]],
                                          labels: list[tuple[int, int]]) -> None:
    check_aggregates(RAY_STORE, rows, labels)


def _mixed_views(tmp: Path, rng: np.random.Generator) -> list[object]:
    """Views on two different entities, an aggregation, a vector feature and an on-demand view.

    Source rows have distinct times (a tie on event time without a created time has no one answer).
    """
    n = 400
    item = Entity("item", ("item",))
    pq.write_table(pa.table({
        "item": rng.integers(0, 30, n), "event_timestamp": pa.array(BASE_US + rng.permutation(n) * S // 2,
                                                                   pa.int64()).cast(TIMESTAMP),
        "price": rng.normal(size=n),
        "vec": pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * 3).astype(np.float32)), 3),
    }), tmp / "items.parquet")
    pq.write_table(pa.table({
        "user": rng.integers(0, 20, n), "event_timestamp": pa.array(BASE_US + rng.permutation(n) * S // 2,
                                                                   pa.int64()).cast(TIMESTAMP),
        "age": rng.normal(size=n)}), tmp / "users.parquet")
    log = EventLog(tmp / "events", SCHEMA)
    log.append(pa.table({
        "event_id": [f"e{i}" for i in range(n)], "user": pa.array(rng.integers(0, 20, n), pa.int64()),
        "value": rng.normal(size=n), "category": pa.array(rng.integers(0, 4, n), pa.int64()),
        "ts": pa.array(BASE_US + rng.integers(0, 200, n) * S, pa.int64()).cast(TIMESTAMP)}))
    log.close()
    return [
        FeatureView("items", (item,), TableSource(str(tmp / "items.parquet")),
                    (Feature("price"), vector_feature("vec", 3)), ttl=timedelta(seconds=60)),
        FeatureView("users", (Entity("user", ("user",)),), TableSource(str(tmp / "users.parquet")), (Feature("age"),)),
        AggregationView("acts", (Entity("user", ("user",)),), EventLogSource(EventLog(tmp / "events", SCHEMA)),
                        (Aggregation("count", window="30s"), Aggregation("mean", "value", window="60s"))),
        OnDemandView("ratio", ("items:price", "users:age"), (Feature("p_age"),),
                     lambda c: {"p_age": c["items__price"] * c["users__age"]}),
    ]


def _same(x: object, y: object) -> bool:
    """Equal values; floats to 1e-9 (a window's mean may sum in another order), NaN equal to NaN."""
    if isinstance(x, float) and isinstance(y, float):
        return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
    return x == y


@pytest.mark.ray
def test_ray_frame_equals_embedded_frame_for_mixed_views(ray_cluster: None, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    views = _mixed_views(tmp_path, rng)
    m = 500
    labels = pa.table({"row": np.arange(m), "user": rng.integers(0, 25, m), "item": rng.integers(0, 35, m),
                       "event_timestamp": pa.array(BASE_US + rng.integers(0, 220, m) * S, pa.int64()).cast(TIMESTAMP)})
    embedded = OfflineStore().to_table(labels, views).sort_by("row")  # type: ignore[arg-type]
    ray_frame = RayOfflineStore(buckets=4, shard_rows=128).to_table(labels, views)  # type: ignore[arg-type]
    assert ray_frame.schema.equals(embedded.schema)
    assert ray_frame.column("row").to_pylist() == list(range(m))  # shards come back in label order
    for name in embedded.column_names:
        a, b = embedded.column(name).to_pylist(), ray_frame.column(name).to_pylist()
        same = [_same(x, y) for x, y in zip(a, b, strict=True)]
        assert all(same), name
    assert embedded.column("items__vec").null_count < m  # the case exercises vectors, not only NULLs


@pytest.mark.ray
def test_ray_frame_from_a_labels_file_and_missing_keys(ray_cluster: None, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    views = _mixed_views(tmp_path, rng)
    labels = pa.table({"user": rng.integers(0, 25, 50), "item": rng.integers(0, 35, 50),
                       "event_timestamp": pa.array(BASE_US + rng.integers(0, 220, 50) * S, pa.int64()).cast(TIMESTAMP)})
    pq.write_table(labels, tmp_path / "labels.parquet")
    shards = RayOfflineStore(shard_rows=20).write_shards(tmp_path / "labels.parquet", views,  # type: ignore[arg-type]
                                                           tmp_path / "frame")
    assert [p.name for p in shards] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    frame = pa.concat_tables(pq.read_table(p, columns=["user", "item"]) for p in shards)
    assert frame.select(["user", "item"]).equals(labels.select(["user", "item"]))  # file order kept
    with pytest.raises(DefinitionError, match="join keys"):
        RayOfflineStore().to_table(labels.drop_columns(["item"]), views)  # type: ignore[arg-type]


@pytest.mark.ray
def test_ray_train_matches_the_embedded_fit(ray_cluster: None) -> None:
    """One worker runs the embedded loop exactly; two workers land within the stated AUC tolerance."""
    from mlsd.scale.train import RayTrainEngine
    from mlsd.systems.ads.training import marketplace_set
    from mlsd.training import train_click_model

    data = marketplace_set(rows=120_000, seed=3)

    def fit(engine: RayTrainEngine | None) -> dict[str, float]:
        result = train_click_model("dcn_v2", data.columns, data.labels, data.split, data.encoder(),
                                   negative_rate=data.negative_rate, seed=0, calibration="platt", engine=engine)
        assert result.params["engine"] == ("ray" if engine else "embedded")
        assert result.params["workers"] == (engine.workers if engine else 1)
        return result.metrics["test"]

    embedded, one, two = fit(None), fit(RayTrainEngine(1)), fit(RayTrainEngine(2))
    assert embedded["auc"] > 0.6  # it learned something
    # one worker: the same shard order (the whole set, the same seed), so the same weights
    assert one["auc"] == pytest.approx(embedded["auc"], abs=1e-6)
    assert two["auc"] == pytest.approx(one["auc"], abs=0.003)  # the tolerance the issue states
    assert two["logloss"] == pytest.approx(one["logloss"], rel=0.01)


@pytest.mark.ray
def test_ray_train_lightgbm_matches_the_embedded_fit(ray_cluster: None) -> None:
    """LightGBM through Ray Train's integration (data-parallel trees on 2 workers) vs the embedded fit."""
    from mlsd.scale.train import RayTrainEngine
    from mlsd.systems.ads.training import marketplace_set
    from mlsd.training import train_click_model

    data = marketplace_set(rows=120_000, seed=3)
    results = [train_click_model("lgbm", data.columns, data.labels, data.split, data.encoder(),
                                 negative_rate=data.negative_rate, seed=0, calibration="platt", engine=engine)
               for engine in (None, RayTrainEngine(2))]
    embedded, ray = (r.metrics["test"] for r in results)
    assert results[1].params["engine"] == "ray"
    assert results[1].pipeline.model.booster is not None  # type: ignore[attr-defined]
    assert embedded["auc"] > 0.6
    assert ray["auc"] == pytest.approx(embedded["auc"], abs=0.01)  # histogram bins differ per shard


def test_query_parts_keep_whole_queries_and_balance_rows() -> None:
    from mlsd.core.errors import MlsdError
    from mlsd.scale.train import query_parts

    groups = np.array([3, 5, 2, 7, 1, 4, 6])
    starts = set(np.concatenate([[0], np.cumsum(groups)]).tolist())
    for parts in (1, 2, 3):
        slices = query_parts(groups, parts)
        assert len(slices) == parts
        assert slices[0].start == 0
        assert slices[-1].stop == groups.sum()
        assert all(a.stop == b.start for a, b in itertools.pairwise(slices))  # contiguous
        assert {s.start for s in slices} | {s.stop for s in slices} <= starts  # cut only between queries
        sizes = [s.stop - s.start for s in slices]
        assert max(sizes) - min(sizes) <= groups.max()
    with pytest.raises(MlsdError, match="cannot give each of 3 workers"):
        query_parts(np.array([10, 1]), 3)


@pytest.mark.ray
def test_ray_two_tower_matches_the_embedded_fit(ray_cluster: None) -> None:
    """Two workers with gathered in-batch negatives land within nDCG@10 0.015 of the embedded fit.

    The tolerance is about three times the embedded fit's own seed-to-seed sd on this set (0.0035 over
    5 seeds, measured): the engines draw id dropout and shard orders differently, so they differ by SGD
    noise, and the issue's example of 0.005 would sit inside that noise."""
    from mlsd.evaluation.topk import topk_metrics
    from mlsd.scale.train import RayTrainEngine
    from mlsd.simulation.generated import preferences
    from mlsd.training import EmbeddedEngine

    data = preferences(seed=0)
    config = data.tower_config(epochs=5)
    counts = np.bincount(data.pair_items, minlength=len(data.items.ids)).astype(np.float64)[:, None]
    baseline = topk_metrics(data.top_k(np.ones((len(data.users.ids), 1)), counts), data.held_out)["ndcg@10"]

    def fit(engine: EmbeddedEngine | RayTrainEngine) -> tuple[float, dict[str, object]]:
        model, report = engine.fit_two_tower(config, data.users, data.items, data.pair_users, data.pair_items,
                                             data.user_items)
        top = data.top_k(model.user_vectors(data.histories()), model.item_vectors(data.items))
        return topk_metrics(top, data.held_out)["ndcg@10"], report

    (embedded, _), (two, report) = fit(EmbeddedEngine()), fit(RayTrainEngine(2))
    assert embedded > baseline + 0.02  # the tower learned tastes beyond popularity
    assert two == pytest.approx(embedded, abs=0.015)
    losses = report["loss_history"]
    assert isinstance(losses, list)
    assert len(losses) == 5
    assert losses[-1] < losses[0]
    assert report["pairs"] == len(data.pair_users)


@pytest.mark.ray
def test_ray_lambdamart_on_whole_query_groups_matches_the_embedded_fit(ray_cluster: None) -> None:
    """LambdaMART data-parallel on 2 workers, each with whole queries: test nDCG@10 within 0.005 of embedded."""
    from mlsd.evaluation.query_ranking import per_query
    from mlsd.scale.train import RayTrainEngine
    from mlsd.simulation.generated import graded_queries
    from mlsd.training.models.lambdamart import LambdaMART

    train, valid, test = graded_queries(3000, seed=0), graded_queries(500, seed=1), graded_queries(1000, seed=2)
    scores, reports = [], []
    for engine in (None, RayTrainEngine(2)):
        model = LambdaMART(train.features, seed=0)
        reports.append(model.fit(train.columns, train.labels, train.groups,
                                 valid=(valid.columns, valid.labels, valid.groups), engine=engine))
        scores.append(float(per_query(test.labels, model.predict(test.columns), test.groups, "ndcg@10").mean()))
    embedded, ray = scores
    assert (reports[0]["engine"], reports[1]["engine"], reports[1]["workers"]) == ("embedded", "ray", 2)
    assert reports[1]["queries"] == 3000
    assert reports[1]["rows"] == len(train.labels)
    assert embedded > 0.8  # the generated utility is learnable
    # the tolerance; seeds alone move it by 0.0005 (sd over 5), distributed bin finding by more
    assert ray == pytest.approx(embedded, abs=0.005)


@pytest.fixture(scope="module")
def ads_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlsd.datasets.marketplace import AdMarketplace, click_log
    from mlsd.systems.ads.run import AdsRun

    home = tmp_path_factory.mktemp("ads-ray")
    # the generated marketplace has a click model to learn, so the guard promotes a champion
    AdsRun(home, clicks=click_log(AdMarketplace(0), 40_000, days=4.0), dataset="marketplace", models=("logreg",),
           progress=False, flat_datasets=False).run()
    return home


def _requests(home: Path, n: int) -> list[dict[str, object]]:
    """Scoring requests for recent entities, with fixed request ids and times (answers are deterministic)."""
    from mlsd.datasets.talkingdata import TALKINGDATA_SCHEMA

    log = EventLog(home / "events" / "clicks", TALKINGDATA_SCHEMA, writer=False)
    clicks = log.read(["ip", "app", "device", "os", "channel", "click_time"]).to_pylist()[-2000:]
    log.close()
    end_s = max(c["click_time"].timestamp() for c in clicks) + 1e-6
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        c = clicks[rng.integers(len(clicks))]
        candidates = [{"app": clicks[j]["app"], "channel": clicks[j]["channel"]}
                      for j in rng.integers(len(clicks), size=5)]
        out.append({"request_id": f"r-{i}", "timestamp": end_s, "context": {k: c[k] for k in ("ip", "device", "os")},
                    "candidates": candidates})
    return out


def _post(url: str, body: object) -> tuple[int, object]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw)
        except ValueError:
            return error.code, raw.decode(errors="replace")


@pytest.mark.ray
def test_ray_serve_answers_as_the_embedded_server(ray_cluster: None, ads_home: Path, tmp_path: Path) -> None:
    """Two replicas behind Ray's proxy: the embedded app's answers, and one /metrics summing both replicas."""
    import dataclasses
    import functools
    import socket
    import urllib.request

    from starlette.testclient import TestClient

    from mlsd.lifecycle.serve import replica_app
    from mlsd.scale.serve import serve_replicated, stop_serving
    from mlsd.serving.app import EdgeLimits

    limits = json.dumps(dataclasses.asdict(EdgeLimits()))
    bodies = _requests(ads_home, 12)
    bad = {"timestamp": "soon", "context": {}, "candidates": []}
    with TestClient(replica_app("ads", str(ads_home), "{}", limits)) as client:  # type: ignore[arg-type]
        embedded = [client.post("/v1/ads/score", json=b) for b in [*bodies, bad]]
    expected = [(r.status_code, r.json()) for r in embedded]
    assert [code for code, _ in expected] == [200] * len(bodies) + [422]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    try:
        serve_replicated(functools.partial(replica_app, "ads", str(ads_home), "{}", limits), name="ads", replicas=2,
                         port=port, metrics_dir=tmp_path / "prometheus", replica_cpus=0.5)
        url = f"http://127.0.0.1:{port}"
        answers = [_post(url + "/v1/ads/score", b) for b in [*bodies, bad]]
        assert answers == expected
        text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
        served = sum(float(line.split()[-1]) for line in text.splitlines()
                     if line.startswith('mlsd_requests_total{status="200"}'))
        assert served == len(bodies)  # both replicas' counts, whichever replica answered /metrics
        pids = {p.name.split("_")[-1] for p in (tmp_path / "prometheus").glob("counter_*.db")}
        assert len(pids) == 2  # two replica processes wrote values
    finally:
        stop_serving()


def test_the_default_path_imports_no_ray() -> None:
    """Only --engine ray imports Ray: the embedded build and serve paths never do."""
    import subprocess
    import sys

    code = ("import sys, mlsd.cli, mlsd.lifecycle.serve, mlsd.lifecycle.plan, mlsd.systems.ads.run, "
            "mlsd.scale.engines as e; e.offline_store('embedded'); e.fit_engine('embedded', 'dcn_v2'); "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_engine_choice_is_checked() -> None:
    from mlsd.core.errors import MlsdError
    from mlsd.scale.engines import fit_engine, offline_store, training_engine

    assert type(offline_store("embedded")) is OfflineStore
    assert isinstance(offline_store("ray"), RayOfflineStore)
    assert fit_engine("ray", "lgbm") is not None  # LightGBM through Ray Train's integration
    assert fit_engine("ray", "two_tower") is None  # not a click-model kind: training_engine picks for those
    assert training_engine("embedded").name == "embedded"
    assert (training_engine("ray", 3).name, training_engine("ray", 3).workers) == ("ray", 3)
    assert fit_engine("ray", "dcn_v2", workers=3).workers == 3  # type: ignore[union-attr]
    with pytest.raises(MlsdError, match="unknown engine"):
        offline_store("spark")
