"""Similar listings models: fitted on training sessions, blend weights chosen on a validation slice.

Validation is the last :data:`VALID_SHARE` of the training sessions by date (SR-GNN's test split
is left untouched until the chosen model is scored once). For each seed the transitions and the
skip-gram embeddings are fitted on the rest, the blend weights are chosen on the validation
prefixes (highest HR@20 + MRR@20), then everything is refitted on all training sessions with those
weights. Peers on the same prefixes with the same metric code: last-item transitions, item
co-visitation (clicked in the same session), the embeddings alone (ANN from the session's vector).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from mlsd.evaluation.repeats import mean_sd
from mlsd.evaluation.significance import cluster_bootstrap_mean
from mlsd.systems.listings.data import Prefixes, Sessions, prefixes
from mlsd.systems.listings.model import SessionRecommender, skipgram_embeddings, transition_matrix

K = 20
VALID_SHARE = 0.2
Progress = Callable[[str], None]
GRID = {"backward": (0.0, 0.5, 1.0), "recency": (0.0, 0.5, 1.0, 2.0, 4.0), "embedding": (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)}
EMBEDDING = {"dim": 32, "window": 3, "epochs": 30, "negative": 5}
BLEND = "session_blend"
PEERS = ("last_item", "covisitation", "embedding_ann", "transitions_recency")


@dataclass
class Scored:
    """Per-prefix hit@K and reciprocal rank@K of one model on one set of prefixes."""

    hits: np.ndarray
    rr: np.ndarray

    def summary(self, sessions: np.ndarray) -> dict[str, Any]:
        hr, hr_ci = cluster_bootstrap_mean(self.hits * 100, sessions)
        mrr, mrr_ci = cluster_bootstrap_mean(self.rr * 100, sessions)
        return {f"hr@{K}": hr, f"mrr@{K}": mrr, "ci95": {f"hr@{K}": list(hr_ci), f"mrr@{K}": list(mrr_ci)}}


def score(model: SessionRecommender, data: Prefixes, k: int = K) -> Scored:
    """Hit and reciprocal rank of each prefix's next item in the model's top ``k`` (the serving code path)."""
    hits, rr = np.zeros(len(data)), np.zeros(len(data))
    for n, (prefix, target) in enumerate(zip(data.prefixes, data.targets.tolist(), strict=True)):
        listed = model.recommend(prefix, k).items.tolist()
        if target in listed:
            hits[n], rr[n] = 1.0, 1.0 / (listed.index(target) + 1)
    return Scored(hits, rr)


def covisitation_matrix(sessions: Sequence[Sequence[int]], items: int) -> sparse.csr_matrix:
    """How many training sessions clicked both ``a`` and ``b`` (symmetric, zero diagonal)."""
    rows, cols = [], []
    for seq in sessions:
        unique = sorted(set(seq))
        for a, b in itertools.permutations(unique, 2):
            rows.append(a)
            cols.append(b)
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(items + 1, items + 1))


def fit(sessions: Sessions, train: Sequence[Sequence[int]], weights: Mapping[str, float], seed: int
        ) -> SessionRecommender:
    embeddings = skipgram_embeddings(train, sessions.items, seed=seed, **EMBEDDING)
    return SessionRecommender(sessions.item_ids, transition_matrix(train, sessions.items), embeddings, weights,
                              params={"seed": seed, **EMBEDDING})


def peers(blend: SessionRecommender, train: Sequence[Sequence[int]], items: int) -> dict[str, SessionRecommender]:
    """The single-signal peers over the blend's own transitions and embeddings (and co-visitation counts)."""
    covisits = SessionRecommender(blend.item_ids, covisitation_matrix(train, items), blend.embeddings,
                                  {"forward": 1.0}, popularity=blend.popularity, index=blend.index)
    return {"last_item": blend.with_weights({"forward": 1.0}), "covisitation": covisits,
            "embedding_ann": blend.with_weights({"embedding": 1.0}),
            "transitions_recency": blend.with_weights({**blend.weights, "embedding": 0.0})}


def select_weights(model: SessionRecommender, valid: Prefixes) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The grid point with the highest validation HR@K + MRR@K (forward transitions weigh 1)."""
    tried: list[dict[str, Any]] = []
    for values in itertools.product(*GRID.values()):
        weights = {"forward": 1.0, **dict(zip(GRID, values, strict=True))}
        scored = score(model.with_weights(weights), valid)
        tried.append({"weights": weights, f"hr@{K}": float(scored.hits.mean() * 100),
                      f"mrr@{K}": float(scored.rr.mean() * 100)})
    best = max(tried, key=lambda t: t[f"hr@{K}"] + t[f"mrr@{K}"])
    return dict(best["weights"]), tried


@dataclass
class SeedRun:
    seed: int
    weights: dict[str, float]
    valid: dict[str, float]
    model: SessionRecommender
    valid_model: SessionRecommender
    test: Scored


def run_seed(sessions: Sessions, seed: int, valid_prefixes: Prefixes, test_prefixes: Prefixes,
             train_part: Sequence[Sequence[int]]) -> SeedRun:
    """Select the blend on validation with this seed's embeddings, refit on all training sessions, test once."""
    on_part = fit(sessions, train_part, {}, seed)
    weights, tried = select_weights(on_part, valid_prefixes)
    chosen = next(t for t in tried if t["weights"] == weights)
    model = fit(sessions, sessions.train, weights, seed)
    return SeedRun(seed, weights, {k: chosen[k] for k in (f"hr@{K}", f"mrr@{K}")}, model,
                   on_part.with_weights(weights), score(model, test_prefixes))


def validation_split(sessions: Sessions) -> tuple[list[list[int]], list[list[int]]]:
    """Training sessions before the last :data:`VALID_SHARE` (by date) and that last share."""
    cut = round(len(sessions.train) * (1 - VALID_SHARE))
    return sessions.train[:cut], sessions.train[cut:]


def evaluate_all(sessions: Sessions, seeds: int, say: Progress) -> tuple[dict[str, Any], list[SeedRun], Prefixes]:
    """Every seed's selected blend and the peers on SR-GNN's test prefixes; returns the results and the runs."""
    train_part, valid_part = validation_split(sessions)
    valid_prefixes, test_prefixes = prefixes(valid_part), prefixes(sessions.test)
    say(f"SR-GNN preprocessing: {len(sessions.train)} training sessions, {len(sessions.test)} test sessions, "
        f"{sessions.items} items, {len(test_prefixes)} test prefixes; validation: the last "
        f"{len(valid_part)} training sessions ({len(valid_prefixes)} prefixes)")
    runs = []
    for seed in range(seeds):
        run = run_seed(sessions, seed, valid_prefixes, test_prefixes, train_part)
        say(f"  seed {seed}: weights {run.weights}; validation HR@{K} {run.valid[f'hr@{K}']:.1f}, "
            f"MRR@{K} {run.valid[f'mrr@{K}']:.1f}; test HR@{K} {run.test.hits.mean() * 100:.1f}, "
            f"MRR@{K} {run.test.rr.mean() * 100:.1f}")
        runs.append(run)
    served = runs[0]
    owners = test_prefixes.sessions
    table: dict[str, Any] = {BLEND: served.test.summary(owners)}
    peer_scores = {name: score(peer, test_prefixes) for name, peer in
                   peers(served.model, sessions.train, sessions.items).items()}
    table.update({name: scored.summary(owners) for name, scored in peer_scores.items()})
    hr = mean_sd(r.test.hits.mean() * 100 for r in runs)
    mrr = mean_sd(r.test.rr.mean() * 100 for r in runs)
    gains = {}  # paired per prefix, bootstrap over test sessions
    for name, metric in (("last_item", "rr"), ("transitions_recency", "hits")):
        diff = (getattr(served.test, metric) - getattr(peer_scores[name], metric)) * 100
        mean, ci = cluster_bootstrap_mean(diff, owners)
        gains[f"blend_minus_{name}_{'mrr' if metric == 'rr' else 'hr'}@{K}"] = {"mean": mean, "ci95": list(ci)}
    results = {
        "test_prefixes": len(test_prefixes), "test_sessions": len(sessions.test),
        "train_sessions": len(sessions.train), "items": sessions.items, "valid_prefixes": len(valid_prefixes),
        f"hr@{K}": table[BLEND][f"hr@{K}"], f"mrr@{K}": table[BLEND][f"mrr@{K}"], "ci95": table[BLEND]["ci95"],
        f"last_item_hr@{K}": table["last_item"][f"hr@{K}"], f"last_item_mrr@{K}": table["last_item"][f"mrr@{K}"],
        "models": table,
        "seeds": {f"hr@{K}_mean": hr[0], f"hr@{K}_sd": hr[1], f"mrr@{K}_mean": mrr[0], f"mrr@{K}_sd": mrr[1],
                  "n": seeds},
        "gains": gains,
        "selection": [{"seed": r.seed, "weights": r.weights, "valid": r.valid} for r in runs],
        "embedding": EMBEDDING, "grid": {k: list(v) for k, v in GRID.items()},
        "selected_on": "validation: the last 20% of training sessions by date (HR@20 + MRR@20)",
    }
    return results, runs, valid_prefixes
