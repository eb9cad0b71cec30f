"""Peers of the recommendation pipeline, run in the same process on the same split and scored by the same code.

Cornac's BPR, BiVAE and EASE, each fitted on the training ratings (rating values as given, as
Microsoft Recommenders' benchmark passes them) and asked for every test user's top-k among the
items the training data holds, seen items removed. BPR and BiVAE use the hyper-parameters of that
benchmark's ML-100K table; EASE cornac's defaults (it is not in that table). A test user the
training data lacks gets an empty list (it counts, as a miss), so every method is averaged over the
same users as the pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mlsd.evaluation.topk import topk_intervals, topk_metrics

PEERS = ("bpr", "bivae", "ease")


def peer_model(name: str, seed: int) -> Any:
    """A fresh, unfitted cornac model."""
    import cornac

    if name == "bpr":
        return cornac.models.BPR(k=200, max_iter=200, learning_rate=0.01, lambda_reg=0.001, seed=seed, verbose=False)
    if name == "bivae":
        return cornac.models.BiVAECF(k=100, encoder_structure=[200], act_fn="tanh", likelihood="pois", n_epochs=500,
                                     batch_size=1024, learning_rate=0.001, seed=seed, use_gpu=False, verbose=False)
    if name == "ease":
        return cornac.models.EASE(seed=seed, verbose=False)
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


def fit_peer(name: str, train: pd.DataFrame, seed: int) -> Any:
    import cornac

    triples = list(zip(train["user"].astype(str), train["item"].astype(str), train["rating"].astype(float),
                       strict=True))
    model = peer_model(name, seed)
    model.fit(cornac.data.Dataset.from_uir(triples, seed=seed))
    return model


def run_peers(train: pd.DataFrame, users: np.ndarray, relevant: list[np.ndarray], *, seed: int = 42,
              k: int = 10, names: tuple[str, ...] = PEERS,
              say: Callable[[str], None] = lambda _: None) -> dict[str, dict[str, Any]]:
    """Each peer's top-k metrics (and 95% intervals over users) for ``users`` with test items ``relevant``."""
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        started = time.perf_counter()
        model = fit_peer(name, train, seed)
        lists = recommend(model, train, users, k)
        metrics: dict[str, Any] = topk_metrics(lists, relevant, k)
        metrics["ci95"] = topk_intervals(lists, relevant, k)
        metrics["seconds"] = round(time.perf_counter() - started, 1)
        say(f"  {name:6s} nDCG@{k} {metrics[f'ndcg@{k}']:.4f} [{metrics['ci95'][f'ndcg@{k}'][0]:.4f}, "
            f"{metrics['ci95'][f'ndcg@{k}'][1]:.4f}]  ({metrics['seconds']:.0f} s)")
        results[name] = metrics
    return results
