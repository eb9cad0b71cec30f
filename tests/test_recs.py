"""Recommendations: top-k metrics by hand, the ANN contract, candidate sources, re-ranking, the service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from mlsd.datasets.movielens import MovieLens
from mlsd.evaluation.topk import candidate_recall, intra_list_diversity, ndcg_per_user, topk_intervals, topk_metrics
from mlsd.retrieval.ann import ExactIndex, HnswIndex, IvfIndex, check_vector_index
from mlsd.retrieval.candidates import CoVisitation, interaction_matrix, top_k_excluding
from mlsd.training.models.lambdamart import LambdaMART


def test_the_served_bivae_scores_order_items_as_cornacs_model_does(tmp_path: Path) -> None:
    import cornac

    from mlsd.retrieval.latent import BiVAEScorer, blend

    rng = np.random.default_rng(3)
    matrix = (rng.random((120, 60)) < 0.1).astype(np.float32)
    matrix[:, 17] = 0  # an item nobody rated: cornac never sees it
    users, items = np.nonzero(matrix)
    model = cornac.models.BiVAECF(k=8, encoder_structure=[16], act_fn="tanh", likelihood="pois", n_epochs=20,
                                  batch_size=64, seed=1, use_gpu=False, verbose=False)
    triples = list(zip(users.astype(str), items.astype(str), [1.0] * len(users), strict=True))
    model.fit(cornac.data.Dataset.from_uir(triples, seed=1))
    scorer = BiVAEScorer.from_cornac(model, 60)
    ours = scorer.scores(matrix)
    order = np.array([int(i) for i in model.train_set.item_ids])
    for user in map(str, np.unique(users)[:20]):
        theirs = model.score(model.train_set.uid_map[user])  # sigmoid of the same dot products
        np.testing.assert_allclose(ours[int(user), order], np.log(theirs / (1 - theirs)), rtol=1e-3, atol=1e-3)
    assert not scorer.item_means[17].any()
    scorer.save(tmp_path / "bivae.npz")
    np.testing.assert_allclose(BiVAEScorer.load(tmp_path / "bivae.npz").scores(matrix[:5]), ours[:5], rtol=1e-6)
    # the blend puts both on one scale per user: a weight of 0 keeps the first's order, the result is float32
    first = rng.random((4, 60)) * 100
    np.testing.assert_array_equal(np.argsort(blend(first, ours[:4], 0.0), 1), np.argsort(first, 1))
    mixed = blend(first, ours[:4], 1.0)
    assert mixed.dtype == np.float32
    assert np.allclose(mixed.mean(1), 0, atol=1e-5)


def test_topk_metrics_match_a_hand_computed_case() -> None:
    recommended = np.array([[1, 2, 3], [4, 5, 6]])
    relevant = [np.array([1, 3, 9]), np.array([6])]
    m = topk_metrics(recommended, relevant, k=3)
    d = 1 / np.log2(np.arange(2, 5))
    ndcg_0 = (d[0] + d[2]) / d.sum()  # hits at ranks 1 and 3 of 3 relevant
    ndcg_1 = d[2] / d[0]  # one relevant item, found at rank 3
    assert m["ndcg@3"] == pytest.approx((ndcg_0 + ndcg_1) / 2)
    assert m["precision@3"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert m["recall@3"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["map"] == pytest.approx(((1 + 2 / 3) / 3 + (1 / 3) / 1) / 2)
    assert candidate_recall(recommended, relevant) == pytest.approx(3 / 4)
    # users without relevant items do not count
    assert topk_metrics(np.vstack([recommended, [[7, 8, 9]]]), [*relevant, np.zeros(0, np.int64)], 3) == m
    per_user = ndcg_per_user(np.vstack([recommended, [[7, 8, 9]]]), [*relevant, np.zeros(0, np.int64)], 3)
    np.testing.assert_allclose(per_user, [ndcg_0, ndcg_1])


def test_topk_intervals_are_over_users_and_narrow_with_more_of_them() -> None:
    rng = np.random.default_rng(0)
    recommended = rng.integers(0, 50, (2000, 10))
    relevant = [rng.choice(50, 5, replace=False) for _ in range(2000)]
    mean = topk_metrics(recommended, relevant)["ndcg@10"]
    wide = topk_intervals(recommended[:100], relevant[:100])["ndcg@10"]
    narrow = topk_intervals(recommended, relevant)["ndcg@10"]
    assert narrow[0] < mean < narrow[1]
    assert narrow[1] - narrow[0] < 0.5 * (wide[1] - wide[0])  # sqrt(20) times more users
    assert set(topk_intervals(recommended, relevant)) == {"ndcg@10", "precision@10", "recall@10", "map"}


def test_lambdamart_learns_a_ranking_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    queries, width = 300, 20
    signal, noise = rng.normal(size=queries * width), rng.normal(size=queries * width)
    labels = (signal + 0.5 * rng.normal(size=signal.size) > 1.2).astype(np.float32)  # noise is irrelevant
    columns = {"signal": signal, "noise": noise}
    groups = np.full(queries, width)
    train = slice(0, 250 * width)
    valid = slice(250 * width, None)
    ranker = LambdaMART(("noise", "signal"), seed=0)
    report = ranker.fit({k: v[train] for k, v in columns.items()}, labels[train], groups[:250],
                        valid=({k: v[valid] for k, v in columns.items()}, labels[valid], groups[250:]))
    assert report["trees"] >= 1
    scores = ranker.predict({k: v[valid] for k, v in columns.items()}).reshape(-1, width)
    items = np.arange(width)[None].repeat(50, 0)
    relevant = [np.flatnonzero(row) for row in labels[valid].reshape(-1, width)]
    learned = topk_metrics(np.take_along_axis(items, np.argsort(-scores, axis=1), 1), relevant, 5)["ndcg@5"]
    shuffled = topk_metrics(np.argsort(rng.random((50, width)), axis=1), relevant, 5)["ndcg@5"]
    assert learned > shuffled + 0.3
    ranker.save(tmp_path / "ranker")
    again = LambdaMART.load(tmp_path / "ranker")
    np.testing.assert_array_equal(again.predict(columns), ranker.predict(columns))
    importance = dict(zip(ranker.features, ranker.booster.feature_importance("gain"), strict=True))  # type: ignore[union-attr]
    assert importance["signal"] > importance["noise"]


def test_intra_list_diversity() -> None:
    genres = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    assert intra_list_diversity(np.array([[0, 1]]), genres) == pytest.approx(0.0)
    assert intra_list_diversity(np.array([[0, 2]]), genres) == pytest.approx(1.0)


@pytest.mark.parametrize("index", [ExactIndex, HnswIndex, IvfIndex])
def test_vector_index_contract(index: type) -> None:
    check_vector_index(index)


def test_co_visitation_scores_co_occurring_items_and_excludes_seen() -> None:
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(200):  # two tastes: items 0-9 and 10-19, with a little noise
        base = 0 if u % 2 else 10
        chosen = rng.choice(10, 6, replace=False) + base
        users += [u] * 6
        items += chosen.tolist()
    matrix = interaction_matrix(np.array(users), np.array(items), 200, 20)
    covis = CoVisitation.fit(matrix, regularization=10.0)
    assert np.allclose(np.diag(covis.weights), 0)
    scores = covis.scores_of(np.array([0, 1, 2]))
    assert scores[3:10].min() > scores[10:].max()
    top, _ = top_k_excluding(scores[None, :], np.isin(np.arange(20), [0, 1, 2])[None, :], 5)
    assert not np.isin(top, [0, 1, 2]).any()
    assert np.all(top < 10)
    # a request's few users take the row-sum path, a batch the matrix product: the same scores
    histories = np.random.default_rng(1).random((12, 20)) < 0.3
    np.testing.assert_allclose(covis.scores(histories[:3]), covis.scores(histories)[:3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(covis.scores(histories[:1]), covis.scores_of(np.flatnonzero(histories[0]))[None],
                               rtol=1e-5, atol=1e-6)


def test_co_visitation_dropout_and_unconstrained_forms_solve_their_objectives() -> None:
    """DLAE: the penalty is L2 + p/(1-p)·G_jj per item; unconstrained, B solves the ridge normal equations
    (G + Λ)B = G; with EASE's constraint the diagonal is zero and each column's off-diagonal part solves
    them too; dropout 0 with the constraint is EASE itself."""
    rng = np.random.default_rng(3)
    matrix = (rng.random((60, 12)) < 0.3).astype(np.float32)
    gram = matrix.T.astype(np.float64) @ matrix
    l2, p = 5.0, 0.5
    penalty = np.diag(l2 + p / (1 - p) * np.diag(gram))
    free = CoVisitation.fit(matrix, regularization=l2, dropout=p, zero_diagonal=False).weights.astype(np.float64)
    full = np.linalg.solve(gram + penalty, gram)  # the unconstrained solution, diagonal included
    np.testing.assert_allclose(free, full - np.diag(np.diag(full)), rtol=1e-4, atol=1e-5)
    constrained = CoVisitation.fit(matrix, regularization=l2, dropout=p).weights.astype(np.float64)
    assert np.allclose(np.diag(constrained), 0)
    for j in range(12):  # column j regresses item j on the others: off the diagonal, the normal equations hold
        others = np.arange(12) != j
        lhs = (gram + penalty)[np.ix_(others, others)] @ constrained[others, j]
        np.testing.assert_allclose(lhs, gram[others, j], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(CoVisitation.fit(matrix, 5.0, 0.0).weights, CoVisitation.fit(matrix, 5.0).weights)
    with pytest.raises(ValueError, match="dropout"):
        CoVisitation.fit(matrix, dropout=1.0)


def synthetic_movielens(n_users: int = 120, n_items: int = 80, seed: int = 0) -> MovieLens:
    """Two user groups with separate tastes (by genre), timestamps over 60 days."""
    rng = np.random.default_rng(seed)
    genres = np.zeros((n_items, 4), np.float32)
    genres[np.arange(n_items), np.arange(n_items) % 4] = 1.0
    rows = []
    for u in range(n_users):
        liked = np.flatnonzero(np.arange(n_items) % 2 == u % 2)
        for i in rng.choice(liked, 15, replace=False):
            rows.append((u + 1, int(i) + 1, int(rng.integers(1, 6)), 880_000_000 + int(rng.integers(0, 60 * 86400))))
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    users = pd.DataFrame({"user_id": np.arange(1, n_users + 1), "user": np.arange(n_users),
                          "age": rng.integers(18, 60, n_users), "gender": np.arange(n_users) % 2,
                          "occupation": rng.integers(0, 21, n_users)})
    items = pd.DataFrame({"item_id": np.arange(1, n_items + 1), "item": np.arange(n_items),
                          "title": [f"m{i}" for i in range(n_items)], "year": 1990.0 + np.arange(n_items) % 8})
    ratings = ratings.merge(users[["user_id", "user"]]).merge(items[["item_id", "item"]])
    ratings = ratings.sort_values(["timestamp", "user_id", "item_id"]).reset_index(drop=True)
    return MovieLens("ml-100k", ratings, users, items, genres, ("a", "b", "c", "d"))


@pytest.fixture(scope="module")
def recs_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MovieLens, dict[str, object]]:
    from mlsd.system import Workspace
    from mlsd.systems.recs.build import prepare_serving
    from mlsd.systems.recs.run import RecsSettings, protocol_a, protocol_b

    data = synthetic_movielens()
    home = tmp_path_factory.mktemp("recs")
    settings = RecsSettings(two_tower_k=30, co_visitation_k=30, popularity_k=10, candidates=50, ranking_depth=30,
                            latent_epochs=60)
    _, metrics = protocol_a(data, home / "protocol_a", settings, lambda _: None)
    trained, metrics_b = protocol_b(data, home / "protocol_b", settings, lambda _: None)
    metrics["served"] = prepare_serving(Workspace(home), data, trained, metrics_b)
    return home, data, metrics


def before_cut(data: MovieLens, metrics: dict) -> pd.DataFrame:
    """The ratings the service starts from: those before protocol B's cut-off."""
    return data.ratings[data.ratings["timestamp"] < metrics["served"]["cut_off_s"]]


@pytest.mark.slow
def test_pipeline_learns_tastes_and_never_recommends_seen_items(recs_home: tuple[Path, MovieLens, dict]) -> None:
    _home, _data, metrics = recs_home
    # ~4 test items per user among ~69 unseen: random lists score ~0.06; lists drawn from the user's
    # half of the catalogue (all there is to learn here) ~0.14.
    assert metrics["precision@10"] > 0.11
    assert metrics["candidate_recall@50"] > 0.6
    low, high = metrics["ci95"]["precision@10"]
    assert low < metrics["precision@10"] < high
    # The ablation ranks the same users: its served row is the pipeline's own result.
    stages = metrics["ablation"]["stages"]
    # the BiVAE's weight in the co-visitation source is chosen on validation; blended, both halves get a row
    latent = metrics["training"]["latent"]
    assert latent["grid"][0]["weight"] == 0.0
    assert latent["chosen"] in [row["weight"] for row in latent["grid"]]
    assert latent["valid_ndcg@10"] == max(row["valid_ndcg@10"] for row in latent["grid"])
    halves = {"co-visitation without BiVAE", "BiVAE alone"} if latent["chosen"] > 0 else set()
    assert set(stages) == {"two_tower alone", "co_visitation alone", "popularity alone", "union, co-visitation order",
                           "union + ranker", "served pipeline (+ re-rank)"} | halves
    assert stages["served pipeline (+ re-rank)"]["ndcg@10"] == pytest.approx(metrics["ndcg@10"])
    assert stages["served pipeline (+ re-rank)"]["pipeline_minus_stage"]["mean"] == 0.0
    assert metrics["ablation"]["best_single_stage"] in {"two_tower alone", "co_visitation alone",
                                                        "popularity alone"} | halves


@pytest.mark.slow
def test_rerank_trades_relevance_for_genre_diversity(recs_home: tuple[Path, MovieLens, dict]) -> None:
    from dataclasses import replace

    from mlsd.registry import ModelRegistry
    from mlsd.systems.recs.pipeline import Recommender
    from mlsd.systems.recs.run import MODEL_NAME

    model, _ = ModelRegistry(recs_home[0]).load_with(Recommender.load, MODEL_NAME)
    items = np.arange(40)
    scores = np.where(items % 4 == 0, 10.0 - items / 100, 1.0 - items / 100)  # genre 0 scores highest
    model.settings = replace(model.settings, mmr_lambda=1.0, freshness=0.0)
    plain = model.rerank(items, scores, 8)
    assert plain.tolist() == np.argsort(-scores, kind="stable")[:8].tolist()
    model.settings = replace(model.settings, mmr_lambda=0.5)
    diverse = model.rerank(items, scores, 8)
    genres = model.genres
    assert intra_list_diversity(items[diverse][None], genres) > intra_list_diversity(items[plain][None], genres)
    assert diverse[0] == plain[0]  # the most relevant item still leads


@pytest.mark.slow
def test_recs_service_known_cold_and_bad_requests(recs_home: tuple[Path, MovieLens, dict]) -> None:
    from mlsd.lifecycle.serve import build_app

    home, data, metrics = recs_home
    with TestClient(build_app("recs", home)) as client:
        reply = client.post("/v1/recs/recommend", json={"user_id": 1, "k": 5})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["path"] == "known_user"
        assert len(body["ranked"]) == 5
        ratings = before_cut(data, metrics)
        seen = set(ratings.loc[ratings["user_id"] == 1, "item_id"])
        listed = [r["item_id"] for r in body["ranked"]]
        assert not seen & set(listed)
        # user 1 (group 0 by u % 2 with u = 0) likes even item indices = odd item ids
        assert sum(i % 2 == 1 for i in listed) >= 4
        assert all(r["stage"] for r in body["ranked"])
        cold = client.post("/v1/recs/recommend", json={"user_id": 999_999, "k": 3, "context": {"age": 30}})
        assert cold.status_code == 200
        assert cold.json()["path"] == "cold_start"
        assert len(cold.json()["ranked"]) == 3
        for bad, field in (({"user_id": 1, "k": 0}, "k"), ({"user_id": "x"}, "user_id"),
                           ({"user_id": 1, "kk": 1}, "kk"), ({"user_id": 1, "k": 101}, "k"), ({"k": 3}, "user_id")):
            reply = client.post("/v1/recs/recommend", json=bad)
            assert reply.status_code == 422, (bad, reply.text)
            assert reply.json()["errors"][0]["field"] == field, (bad, reply.text)
        assert client.post("/v1/recs/recommend", content=b"{", headers={"content-type": "application/json"}
                           ).status_code == 400
        # an occupation code training never saw (the schema allows up to 1000): the unknown embedding, not a 500
        for occupation in (21, 500, 1000):
            odd = client.post("/v1/recs/recommend", json={"user_id": 999_998, "k": 3,
                                                          "context": {"occupation": occupation, "age": 120}})
            assert odd.status_code == 200, odd.text
        metrics = client.get("/metrics").text
        assert 'mlsd_recs_stage_seconds_count{stage="two_tower"}' in metrics
    logged = "".join(p.read_text() for p in (home / "feature_log").glob("*.jsonl"))
    assert '"cold_start"' in logged
    assert '"known_user"' in logged
    assert '"covis_score"' in logged


@pytest.mark.slow
def test_recs_service_follows_ratings_streamed_after_the_snapshot(recs_home: tuple[Path, MovieLens, dict],
                                                                   tmp_path: Path) -> None:
    """A rating the stream processor wrote to the online store is excluded from the next list (for a
    known user and a cold-start one) and changes the user's tower input."""
    import shutil

    from mlsd.systems.recs.serve import RecsService

    home = tmp_path / "home"
    shutil.copytree(recs_home[0], home)
    service = RecsService(home)
    try:
        def listed(user_id: int) -> list[int]:
            body = {"user_id": user_id, "k": 10, "timestamp": 900_000_000, "context": {"age": 30}}
            return [r["item_id"] for r in service.score(body, "r")[0]["ranked"]]

        first_known, first_cold = listed(1), listed(999_999)
        processor = service.store.stream_processor(["user_history"])
        processor.process_records([{"event_id": f"late-{u}", "user_id": u, "item_id": items[0], "rating": 5.0,
                                    "ts": 890_000_000.0} for u, items in ((1, first_known), (999_999, first_cold))])
        misses = service.models.current[0].user_vectors.misses
        after_known, after_cold = listed(1), listed(999_999)
        assert first_known[0] not in after_known
        assert first_cold[0] not in after_cold
        assert service.models.current[0].user_vectors.misses == misses + 2  # new histories, new vectors
    finally:
        service.close()


@pytest.mark.slow
def test_recs_service_takes_ratings_durably_and_follows_them(recs_home: tuple[Path, MovieLens, dict],
                                                             tmp_path: Path) -> None:
    import shutil

    from mlsd.events import EventLog
    from mlsd.lifecycle.serve import build_app
    from mlsd.systems.recs.features import RATINGS_SCHEMA

    home = tmp_path / "home"
    shutil.copytree(recs_home[0], home)
    with TestClient(build_app("recs", home)) as client:
        def listed(user_id: int) -> list[int]:
            reply = client.post("/v1/recs/recommend", json={"user_id": user_id, "k": 10, "context": {"age": 30}})
            return [r["item_id"] for r in reply.json()["ranked"]]

        known, cold = listed(1), listed(999_999)
        ratings = [{"user_id": 1, "item_id": known[0], "rating": 4.5, "timestamp": 890_000_000},
                   {"user_id": 999_999, "item_id": cold[0], "rating": 5, "timestamp": 890_000_001}]
        reply = client.post("/v1/recs/ratings", json={"ratings": ratings})
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"accepted": 2, "duplicates": 0}
        assert known[0] not in listed(1)
        assert cold[0] not in listed(999_999)
        assert client.post("/v1/recs/ratings", json={"ratings": ratings}).json() == {"accepted": 0, "duplicates": 2}
        bad = client.post("/v1/recs/ratings", json={"ratings": [ratings[0], {**ratings[1], "rating": 7}]})
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "ratings[1].rating"
        late = client.post("/v1/recs/ratings", json={"ratings": [{**ratings[0], "timestamp": 4e9}]})
        assert late.status_code == 422, late.text  # decades in the future: the event log's own check
        assert client.post("/v1/recs/ratings", json={"ratings": []}).status_code == 422
        assert "/v1/recs/ratings" in client.get("/openapi.json").json()["paths"]
    log = EventLog(home / "serving" / "events", RATINGS_SCHEMA, writer=False)
    stored = log.read(["user_id", "item_id"]).to_pylist()
    log.close()
    assert len(stored) == len(before_cut(recs_home[1], recs_home[2])) + 2
    assert {"user_id": 999_999, "item_id": cold[0]} in stored


@pytest.mark.slow
def test_ranker_inputs_do_not_shift_when_scores_and_counts_grow(recs_home: tuple[Path, MovieLens, dict]) -> None:
    """The ranker learns on candidate models fitted on part of the data and serves refitted ones:
    scaling co-visitation weights and popularity counts (more data) must leave its inputs unchanged."""
    from mlsd.registry import ModelRegistry
    from mlsd.systems.recs.pipeline import LAST_ITEMS, RANKING_FEATURES, Recommender, Users
    from mlsd.systems.recs.run import MODEL_NAME

    home, _data, _ = recs_home
    model, _ = ModelRegistry(home).load_with(Recommender.load, MODEL_NAME)
    users = Users(np.array([0, 1]), np.array([1, 2]), np.array([[2, 0, 3], [3, 1, 4]]),
                  [np.array([0, 2, 4]), np.array([1, 3])])
    rng = np.random.default_rng(0)
    counts = {name: rng.integers(0, 50, model.n_items).astype(np.float64)
              for name in ("item_popularity__count_7d", "item_popularity__count_30d", "item_popularity__count_all")}

    def lookup(growth: float):  # type: ignore[no-untyped-def]
        def read(user_ids: np.ndarray, item_ids: np.ndarray) -> tuple[dict, dict]:
            dense = model.dense_items(item_ids)
            last = {name: np.array([model.item_ids[4 - n], np.nan]) for n, name in enumerate(LAST_ITEMS)}
            return last, {name: np.where(dense >= 0, growth * values[dense], np.nan) for name, values in counts.items()}
        return read

    before = model.ranking_columns(users, model.candidates(users), lookup(1.0))
    model.covis.weights = model.covis.weights * 1.25
    after = model.ranking_columns(users, model.candidates(users), lookup(1.25))
    assert not np.allclose(np.nan_to_num(before["covis_score"]), np.nan_to_num(after["covis_score"]))
    for name in RANKING_FEATURES:
        if name in before:
            np.testing.assert_allclose(after[name], before[name], rtol=1e-5, err_msg=name)
    assert "covis_score" not in RANKING_FEATURES
    assert "covis_score_relative" in RANKING_FEATURES


@pytest.mark.slow
def test_ranker_promotion_is_cross_validated(recs_home: tuple[Path, MovieLens, dict]) -> None:
    """Every labelled user is evaluated once, by a ranker that never saw them; the served ranker is
    fitted on everyone for the median number of trees the folds stopped at."""
    report = recs_home[2]["training"]["ranker"]
    assert report["folds"] == len(report["fold_trees"]) == 5
    assert report["queries"] == report["evaluated_users"] > 0
    assert report["trees"] == max(1, int(np.median(report["fold_trees"])))
    assert report["promoted"] == (report["valid_gain_lower_bound"] > 0)


def test_co_visitation_settings_are_chosen_on_validation(recs_home: tuple[Path, MovieLens, dict]) -> None:
    from mlsd.systems.recs.choices import CO_VISITATION_GRID

    chosen = recs_home[2]["training"]["co_visitation"]
    grid = chosen["grid"]
    assert len(grid) == len(CO_VISITATION_GRID)
    assert chosen["valid_ndcg@10"] == max(row["valid_ndcg@10"] for row in grid)
    assert {**chosen["chosen"], "valid_ndcg@10": chosen["valid_ndcg@10"]} in grid


def test_items_nobody_rated_get_content_tower_vectors() -> None:
    """A new item's id embedding was never trained: its vector must come from its content alone."""
    from mlsd.systems.recs.run import Phase, RecsSettings, fit_recommender, item_inputs
    from mlsd.training.models.two_tower import ItemInputs

    data = synthetic_movielens(n_users=40, n_items=40)
    new_items = np.array([3, 10])
    phase = Phase(data.ratings[~data.ratings["item"].isin(new_items)], 0)
    model, _report = fit_recommender(data, phase, RecsSettings(), epochs=1)
    items = item_inputs(data)
    content = model.tower.item_vectors(ItemInputs(np.full(data.n_items, -1), items.categorical, items.dense))
    with_ids = model.tower.item_vectors(items)
    np.testing.assert_allclose(model.item_vectors[new_items], content[new_items], rtol=1e-6)
    rated = np.setdiff1d(np.arange(data.n_items), new_items)
    np.testing.assert_allclose(model.item_vectors[rated], with_ids[rated], rtol=1e-6)
    assert not np.allclose(with_ids[new_items], content[new_items])  # the id path would give another vector
