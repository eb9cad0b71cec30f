"""Protocol A as published: Microsoft Recommenders' split reproduced, and cornac peers on the same split."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from mlsd.evaluation.splits import stratified_split

DATA = os.environ.get("MLSD_DATA_DIR")


def _reference_split(frame: pd.DataFrame, ratio: float, by: str, seed: int) -> pd.Series:
    """The published split written the way its authors write it (pandas, the global NumPy generator)."""
    data = frame.sort_values("file_row").copy()
    np.random.seed(seed)
    data["random"] = np.random.rand(len(data))
    data = data.sort_values([by, "random"])
    grouped = data.groupby(by)
    data["count"] = grouped[by].transform("count")
    data["rank"] = grouped.cumcount() + 1
    return (data["rank"] <= round(ratio * data["count"])).reindex(frame.index)


def test_split_is_microsoft_recommenders_split_whatever_the_row_order() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    frame = pd.DataFrame({"user": rng.integers(0, 80, n), "item": rng.integers(0, 300, n), "file_row": np.arange(n)})
    frame = frame.sample(frac=1.0, random_state=1)  # loaded in another order (ours: by time)
    for by in ("item", "user"):
        expected = _reference_split(frame, 0.75, by, 42).to_numpy()
        np.testing.assert_array_equal(stratified_split(frame, 0.75, by=by, seed=42), expected)
    mask = stratified_split(frame, 0.75, by="item", seed=42)
    assert not np.array_equal(mask, stratified_split(frame, 0.75, by="item", seed=43))
    share = pd.Series(mask).groupby(frame["item"].to_numpy()).mean()
    assert share.between(0.5, 1.0).all()
    with pytest.raises(ValueError, match="ratio"):
        stratified_split(frame, 1.5)


def test_peers_recommend_unseen_items_and_beat_chance() -> None:
    from mlsd.systems.recs.peers import fit_peer, recommend, run_peers
    from tests.test_recs import synthetic_movielens

    data = synthetic_movielens()
    ratings = data.ratings
    mask = stratified_split(ratings, 0.75, by="item", seed=42)
    train, test = ratings[mask], ratings[~mask]
    users = np.sort(test["user"].unique())
    relevant = [test.loc[test["user"] == u, "item"].to_numpy() for u in users]
    lists = recommend(fit_peer("ease", train, 0), train, users)
    for row, user in zip(lists, users, strict=True):
        assert not np.isin(row, train.loc[train["user"] == user, "item"].to_numpy()).any()
    found = run_peers(train, users, relevant, names=("bpr", "ease"))
    tuned = found["ease"]["tuned"]  # chosen on a split of the training ratings: the best of its grid
    assert tuned["valid_ndcg@10"] == max(g["valid_ndcg@10"] for g in tuned["grid"])
    assert len(tuned["grid"]) == 12
    assert "tuned" not in found["bpr"]  # the benchmark's published settings
    chance = np.mean([len(r) for r in relevant]) / data.n_items  # precision of a random list
    for metrics in found.values():
        assert metrics["precision@10"] > 1.5 * chance
        low, high = metrics["ci95"]["ndcg@10"]
        assert low < metrics["ndcg@10"] < high


def test_peers_is_a_switch_of_mlsd_run_recs() -> None:
    from mlsd.cli import build_parser
    from mlsd.system import load_system

    parser = build_parser(load_system("recs").options)
    assert parser.parse_args(["run", "recs", "--peers"]).peers is True
    assert parser.parse_args(["run", "recs"]).peers is False


@pytest.mark.data
@pytest.mark.skipif(not DATA, reason="MLSD_DATA_DIR not set")
def test_bpr_on_the_published_split_matches_the_published_table() -> None:
    """BPR with the benchmark's settings on its split lands on its published nDCG@10 (0.4420)."""
    from mlsd.datasets.movielens import load_movielens
    from mlsd.systems.recs.peers import run_peers
    from mlsd.systems.recs.run import PUBLISHED_ML100K, split_a

    data = load_movielens("ml-100k", DATA)
    train, test = split_a(data)
    assert (len(train), len(test)) == (75_066, 24_934)
    users = np.sort(test["user"].unique())
    relevant = [test.loc[test["user"] == u, "item"].to_numpy() for u in users]
    bpr = run_peers(train, users, relevant, names=("bpr",))["bpr"]
    assert bpr["ndcg@10"] == pytest.approx(PUBLISHED_ML100K["BPR"]["ndcg@10"], abs=0.01)  # measured 0.4376
