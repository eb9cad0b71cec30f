"""Peers of the recommendation pipeline, run in the same process on the same split and scored by the same code.

Cornac's BPR, BiVAE and EASE, each fitted on the training ratings (rating values as given, as
Microsoft Recommenders' benchmark passes them) and asked for every test user's top-k among the
items the training data holds, seen items removed. BPR and BiVAE use the hyper-parameters of that
benchmark's ML-100K table. EASE is not in that table, so its two settings are chosen on validation
(:func:`tune_ease`): its L2 weight ``lamb`` and whether it reads the rating values or only that a rating
exists (EASE's paper uses 0/1), by nDCG@10 on a random 20% of each training user's ratings held out
from a fit on the rest, never on the test split; the chosen settings are then fitted on all training
ratings and reported with the results. A test user the training data lacks gets an empty list (it
counts, as a miss), so every method is averaged over the same users as the pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlsd.evaluation.repeats import mean_sd
from mlsd.evaluation.topk import topk_intervals, topk_metrics

if TYPE_CHECKING:
    from pathlib import Path

    from mlsd.datasets.movielens import MovieLens
    from mlsd.systems.recs.pipeline import RecsSettings
    from mlsd.training.engine import FitEngine

PEERS = ("bpr", "bivae", "ease")
EASE_LAMBDAS = (50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0)  # cornac's default is 500


def peer_model(name: str, seed: int, **settings: Any) -> Any:
    """A fresh, unfitted cornac model (``settings``: EASE's ``lamb``)."""
    import cornac

    if name == "bpr":
        return cornac.models.BPR(k=200, max_iter=200, learning_rate=0.01, lambda_reg=0.001, seed=seed, verbose=False)
    if name == "bivae":
        return cornac.models.BiVAECF(k=100, encoder_structure=[200], act_fn="tanh", likelihood="pois", n_epochs=500,
                                     batch_size=1024, learning_rate=0.001, seed=seed, use_gpu=False, verbose=False)
    if name == "ease":
        return cornac.models.EASE(lamb=float(settings.get("lamb", 500.0)), seed=seed, verbose=False)
    raise ValueError(f"unknown peer {name!r}; peers: {', '.join(PEERS)}")


def recommend(model: Any, train: pd.DataFrame, users: np.ndarray, k: int = 10) -> np.ndarray:
    """``(len(users), k)`` dense item ids (-1: no item) from a model fitted on ``train``'s (user, item, rating)."""
    train_set = model.train_set
    items = np.array([int(i) for i in train_set.item_ids])  # cornac's item index -> our dense item id
    rated = train["item"].to_numpy()
    seen: dict[Any, np.ndarray] = {user: rated[rows] for user, rows in train.groupby("user").indices.items()}
    out = np.full((len(users), k), -1, np.int64)
    for row, user in enumerate(users.tolist()):
        index = train_set.uid_map.get(str(user))
        if index is None:
            continue  # no training rating: nothing to score
        scores = np.asarray(model.score(index), np.float64).ravel().copy()  # EASE answers a (1, items) row
        scores[np.isin(items, seen.get(user, []))] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        top = top[np.isfinite(scores[top])]
        out[row, :len(top)] = items[top]
    return out


def fit_peer(name: str, train: pd.DataFrame, seed: int, *, binary: bool = False, **settings: Any) -> Any:
    """``name`` fitted on ``train``'s ratings (``binary``: every rating counts 1)."""
    import cornac

    values = np.ones(len(train)) if binary else train["rating"].astype(float).to_numpy()
    triples = list(zip(train["user"].astype(str), train["item"].astype(str), values.tolist(), strict=True))
    model = peer_model(name, seed, **settings)
    model.fit(cornac.data.Dataset.from_uir(triples, seed=seed))
    return model


def tune_ease(train: pd.DataFrame, seed: int, k: int = 10) -> dict[str, Any]:
    """EASE's ``lamb`` and ``binary`` chosen by nDCG@k on a validation split carved from ``train`` alone."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(train), bool)
    for rows in train.groupby("user").indices.values():
        held[rng.permutation(rows)[: round(0.2 * len(rows))]] = True
    fit_on, valid = train[~held], train[held]
    users = np.sort(valid["user"].unique())
    grouped = valid.groupby("user")["item"]
    relevant = [grouped.get_group(u).to_numpy() for u in users]
    grid = {}
    for binary in (False, True):
        for lamb in EASE_LAMBDAS:
            lists = recommend(fit_peer("ease", fit_on, seed, binary=binary, lamb=lamb), fit_on, users, k)
            grid[(binary, lamb)] = topk_metrics(lists, relevant, k)[f"ndcg@{k}"]
    binary, lamb = max(grid, key=lambda key: grid[key])
    return {"lamb": lamb, "binary": binary, f"valid_ndcg@{k}": grid[(binary, lamb)],
            "grid": [{"binary": b, "lamb": lm, f"valid_ndcg@{k}": v} for (b, lm), v in grid.items()],
            "chosen_on": "a random 20% of each training user's ratings (fit on the other 80%)"}


def run_peers(train: pd.DataFrame, users: np.ndarray, relevant: list[np.ndarray], *, seed: int = 42,
              k: int = 10, names: tuple[str, ...] = PEERS,
              say: Callable[[str], None] = lambda _: None) -> dict[str, dict[str, Any]]:
    """Each peer's top-k metrics (and 95% intervals over users) for ``users`` with test items ``relevant``."""
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        started = time.perf_counter()
        tuned = tune_ease(train, seed, k) if name == "ease" else {}
        settings = {key: tuned[key] for key in ("lamb", "binary") if key in tuned}
        model = fit_peer(name, train, seed, **settings)
        lists = recommend(model, train, users, k)
        metrics: dict[str, Any] = topk_metrics(lists, relevant, k)
        if tuned:
            metrics["tuned"] = tuned
        metrics["ci95"] = topk_intervals(lists, relevant, k)
        metrics["seconds"] = round(time.perf_counter() - started, 1)
        chosen = f", chosen on validation: lamb {tuned['lamb']:g}, {'0/1' if tuned['binary'] else 'rated'} input" \
            if tuned else ""
        say(f"  {name:6s} nDCG@{k} {metrics[f'ndcg@{k}']:.4f} [{metrics['ci95'][f'ndcg@{k}'][0]:.4f}, "
            f"{metrics['ci95'][f'ndcg@{k}'][1]:.4f}]  ({metrics['seconds']:.0f} s{chosen})")
        results[name] = metrics
    return results


def protocol_a_with_peers(data: MovieLens, home: Path, settings: RecsSettings, first: dict[str, Any],
                          peers: tuple[str, ...], say: Callable[[str], None],
                          engine: FitEngine | None = None) -> dict[str, Any]:
    """Protocol A on the other split seeds, and each peer on every split (see
    :func:`~mlsd.systems.recs.run.run_recs`): the peers' summaries; ``first`` (seed 42's metrics) gains
    ``ndcg@10_seeds``."""
    from mlsd.systems.recs.choices import relevant_sets
    from mlsd.systems.recs.run import SPLIT_SEEDS, protocol_a, split_a

    ndcg: dict[str, list[float]] = {"mlsd": [first["ndcg@10"]], **{p: [] for p in peers}}
    intervals: dict[str, list[float]] = {}
    tuned: dict[str, list[dict[str, Any]]] = {}
    for split_seed in SPLIT_SEEDS:
        if split_seed != SPLIT_SEEDS[0]:
            say(f"protocol_a: split seed {split_seed}")
            _, metrics = protocol_a(data, home / f"seed-{split_seed}", settings, lambda m: say(f"  {m}"),
                                    split_seed=split_seed, engine=engine)
            ndcg["mlsd"].append(metrics["ndcg@10"])
        say(f"  peers on split seed {split_seed}")
        train, test = split_a(data, split_seed)
        relevant = relevant_sets(test, np.arange(data.n_users))
        tested = np.flatnonzero([len(r) > 0 for r in relevant])
        found = run_peers(train, tested, [relevant[u] for u in tested], seed=SPLIT_SEEDS[0], names=peers,
                          say=lambda m: say(f"  {m}"))
        for name, metrics in found.items():
            ndcg[name].append(metrics["ndcg@10"])
            if split_seed == SPLIT_SEEDS[0]:
                intervals[name] = metrics["ci95"]["ndcg@10"]
            if "tuned" in metrics:  # what validation chose on this split (EASE)
                tuned.setdefault(name, []).append({k: v for k, v in metrics["tuned"].items() if k != "grid"})
    first["ndcg@10_seeds"] = _over_seeds(ndcg["mlsd"], SPLIT_SEEDS)
    return {name: {"ndcg@10": float(np.mean(ndcg[name])), "ndcg@10_seeds": _over_seeds(ndcg[name], SPLIT_SEEDS),
                   "ci95": {"ndcg@10": intervals[name]}, **({"tuned": tuned[name]} if name in tuned else {})}
            for name in peers}


def _over_seeds(values: list[float], seeds: tuple[int, ...]) -> dict[str, Any]:
    """Mean, sample sd and count of one metric over the first ``len(values)`` of ``seeds``."""
    mean, sd = mean_sd(values)
    return {"mean": mean, "sd": sd, "n": len(values), "seeds": list(seeds[:len(values)]),
            "values": [float(v) for v in values]}
