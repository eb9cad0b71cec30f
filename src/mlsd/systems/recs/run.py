"""`mlsd run recs`: MovieLens through the platform, evaluated under both protocols, the model registered.

Protocol A (comparable with Microsoft Recommenders): their benchmark's split, ``python_stratified_split``
with ratio 0.75, ``filter_by="item"`` and seed 42 (:func:`mlsd.evaluation.splits.stratified_split`);
with ``peers`` also seeds 43-46, and cornac's BPR, BiVAE and EASE on each split beside the pipeline.
Protocol B (how the system runs): train on ratings before a cut-off, test on the ratings after it.
In both, the ranker is trained the way it runs: candidate models are fitted on an earlier part of the
training data (a random 80% of each user's items in A, ratings before a second cut-off in B), the
ranker learns which candidates the held-back part contains, then the candidate models are refitted
on all training data and the whole pipeline recommends for the test period. Feature-store values are
taken point-in-time at the moment of recommendation (the end of the data the models saw). The
co-visitation model's settings are chosen on the same two parts: fitted on the earlier one, scored
by the nDCG@10 of its own order on the held-back one, never on the test split; then the weight of a
BiVAE blended into that source (0 = EASE alone) and the re-ranking's MMR lambda, the same way
(:mod:`mlsd.systems.recs.choices`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlsd.core.timeutil import TIMESTAMP
from mlsd.datasets.movielens import MovieLens, load_movielens
from mlsd.evaluation.splits import stratified_split
from mlsd.evaluation.topk import (
    candidate_recall,
    catalogue_coverage,
    intra_list_diversity,
    topk_intervals,
    topk_metrics,
)
from mlsd.events import EventLog, Ingestor
from mlsd.features import FeatureStore, OfflineStore, open_online_store
from mlsd.retrieval.candidates import CoVisitation, interaction_matrix
from mlsd.retrieval.latent import BiVAEScorer
from mlsd.systems.recs.ablation import ablation
from mlsd.systems.recs.choices import choose_co_visitation, choose_latent, choose_mmr, relevant_sets
from mlsd.systems.recs.features import ITEM_VIEWS, RATINGS_SCHEMA, USER_VIEWS, ratings_table, recs_views, write_profiles
from mlsd.systems.recs.pipeline import FeatureLookup, Ranked, Recommender, RecsSettings, Users
from mlsd.systems.recs.ranker import train_ranker
from mlsd.training.engine import EmbeddedEngine, FitEngine
from mlsd.training.models.lambdamart import LambdaMART
from mlsd.training.models.two_tower import ItemInputs, TowerConfig, UserInputs

SPLIT_SEEDS = (42, 43, 44, 45, 46)  # protocol A's split seeds with peers (42: the published one)
PUBLISHED_ML100K = {  # Microsoft Recommenders' benchmark table, ML-100K, top-10
    "BiVAE": {"ndcg@10": 0.4751, "precision@10": 0.4118},
    "BPR": {"ndcg@10": 0.4420}, "LightGCN": {"ndcg@10": 0.4198}, "SAR": {"ndcg@10": 0.3825},
}
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Phase:
    """What a fitted stage sees: the ratings it may learn from and the time it is evaluated at."""

    ratings: pd.DataFrame
    as_of_s: int


def per_user_split(ratings: pd.DataFrame, ratio: float, seed: int) -> np.ndarray:
    """Per user, a random ``ratio`` of the ratings (rounded) go to training: the boolean training mask."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(ratings), bool)
    for rows in ratings.groupby("user", sort=True).indices.values():
        shuffled = rng.permutation(rows)
        mask[shuffled[: round(ratio * len(rows))]] = True
    return mask


def user_items(ratings: pd.DataFrame, n_users: int) -> list[np.ndarray]:
    """Each user's items in time order (dense ids)."""
    ordered = ratings.sort_values("timestamp", kind="stable")
    groups = ordered.groupby("user").indices
    items = ordered["item"].to_numpy()
    return [items[groups[u]] if u in groups else np.zeros(0, np.int64) for u in range(n_users)]


def user_codes(age: np.ndarray, gender: np.ndarray, occupation: np.ndarray) -> np.ndarray:
    """User-tower attribute codes (age decade, gender, occupation); -1 = unknown (also NaN from the store)."""
    raw = np.stack([np.asarray(age, np.float64) // 10, gender, occupation], axis=1).astype(np.float64)
    raw[:, 0] = np.minimum(raw[:, 0], 7)
    return np.where(np.isfinite(raw) & (raw >= 0), raw, -1).astype(np.int64)


def _categorical(data: MovieLens) -> tuple[np.ndarray, tuple[int, ...]]:
    users = data.users
    codes = user_codes(users["age"].to_numpy(), users["gender"].to_numpy(), users["occupation"].to_numpy())
    return codes, (8, 2, 21) if data.name == "ml-100k" else (1, 1, 1)


def item_inputs(data: MovieLens, ids: np.ndarray | None = None) -> ItemInputs:
    """Item-tower inputs: id, decade code, genres and a centred year (a new item passes ids of -1)."""
    year = np.nan_to_num(data.items["year"].to_numpy(), nan=1990.0)
    decade = np.clip((year - 1920) // 10, 0, 9).astype(np.int64)[:, None]
    dense = np.hstack([data.genres, ((year - 1990) / 20)[:, None]]).astype(np.float32)
    return ItemInputs(np.arange(data.n_items) if ids is None else ids, decade, dense)


def fit_recommender(data: MovieLens, phase: Phase, settings: RecsSettings, seed: int = 0, epochs: int = 25,
                    engine: FitEngine | None = None, co_visitation: dict[str, Any] | None = None,
                    latent_weight: float = 0.0, latent: BiVAEScorer | None = None
                    ) -> tuple[Recommender, dict[str, Any]]:
    """Two-tower model, ANN index, co-visitation weights and popularity from one phase's ratings.

    ``engine`` fits the two-tower model (embedded by default; the report records which, and its workers);
    ``co_visitation``: :meth:`CoVisitation.fit`'s settings (its defaults if None); ``latent_weight`` > 0
    blends a BiVAE into the co-visitation source (``latent`` if already fitted on this phase, else fitted here)."""
    ratings = phase.ratings
    codes, vocab = _categorical(data)
    items = item_inputs(data)
    config = TowerConfig(n_users=data.n_users, n_items=data.n_items, user_vocab=vocab, item_vocab=(10,),
                         item_dense=items.dense.shape[1], epochs=epochs, seed=seed)
    histories = user_items(ratings, data.n_users)
    engine = engine or EmbeddedEngine()
    tower, report = engine.fit_two_tower(config, UserInputs(np.arange(data.n_users), codes, np.zeros((0, 0))),
                                         items, ratings["user"].to_numpy(), ratings["item"].to_numpy(), histories)
    report |= {"engine": engine.name, "workers": engine.workers}
    matrix = interaction_matrix(ratings["user"].to_numpy(), ratings["item"].to_numpy(), data.n_users, data.n_items)
    started = time.perf_counter()
    covis = CoVisitation.fit(matrix, **(co_visitation or {}))
    report["co_visitation_seconds"] = time.perf_counter() - started
    if latent_weight > 0 and latent is None:
        started = time.perf_counter()
        latent = BiVAEScorer.fit(matrix, epochs=settings.latent_epochs, seed=seed)
        report["latent_seconds"] = time.perf_counter() - started
    popularity = np.bincount(ratings["item"].to_numpy(), minlength=data.n_items).astype(np.float64)
    # An item nobody rated in this phase has an id embedding that never left its initialization: such
    # new items are embedded from their content alone (the id-dropout path the tower was trained for).
    content_only = ItemInputs(np.where(popularity > 0, items.ids, -1), items.categorical, items.dense)
    recommender = Recommender(tower, tower.item_vectors(content_only), covis, popularity, data.genres,
                              data.items["year"].to_numpy(np.float64), data.items["item_id"].to_numpy(np.int64),
                              data.users["user_id"].to_numpy(np.int64), settings,
                              latent=latent if latent_weight > 0 else None, latent_weight=latent_weight)
    return recommender, report


def users_of(data: MovieLens, histories: list[np.ndarray], rows: np.ndarray) -> Users:
    codes, _ = _categorical(data)
    known = np.array([len(histories[u]) > 0 for u in rows])
    # A user with no history is a cold-start user: attributes only (id unknown), demographic/popular candidates.
    return Users(np.where(known, rows, -1), data.users["user_id"].to_numpy()[rows], codes[rows],
                 [histories[u] for u in rows])


class PhaseStore:
    """A feature store over one phase's ratings, read point-in-time at the phase's evaluation time."""

    def __init__(self, data: MovieLens, phase: Phase, home: Path) -> None:
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        self.log = EventLog(home / "events", RATINGS_SCHEMA)
        Ingestor(self.log).ingest_table(ratings_table(phase.ratings), "movielens")
        profiles = home / "profiles"
        write_profiles(data, profiles)
        self.store = FeatureStore(open_online_store(home / "online.db"), OfflineStore(), recs_views(self.log, profiles))
        self.as_of_us = phase.as_of_s * 1_000_000

    def _frame(self, key: str, ids: np.ndarray, views: tuple[str, ...]) -> dict[str, np.ndarray]:
        stamp = pa.array(np.full(len(ids), self.as_of_us, np.int64)).cast(TIMESTAMP)
        labels = pa.table({"row": np.arange(len(ids)), key: ids, "event_timestamp": stamp})
        frame = self.store.training_frame(labels, list(views)).read_all().sort_by("row")
        return {name: frame[name].to_numpy(zero_copy_only=False).astype(np.float64)
                for name in frame.column_names if "__" in name}

    def lookup(self) -> FeatureLookup:
        def read(user_ids: np.ndarray, item_ids: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
            users = self._frame("user_id", np.asarray(user_ids, np.int64), USER_VIEWS)
            catalogue = np.unique(item_ids[item_ids >= 0])
            items = self._frame("item_id", catalogue, ITEM_VIEWS)
            position = np.searchsorted(catalogue, np.maximum(item_ids, 0))
            valid = item_ids >= 0
            return users, {name: np.where(valid, values[np.minimum(position, len(catalogue) - 1)], np.nan)
                           for name, values in items.items()}
        return read

    def close(self) -> None:
        self.store.online.close()
        self.log.close()


def evaluate(recommender: Recommender, users: Users, lookup: FeatureLookup, relevant: list[np.ndarray],
             n_items: int, k: int = 10) -> dict[str, Any]:
    """Top-k metrics after re-ranking (and before it), candidate recall per source, coverage, diversity."""
    return evaluate_ranked(recommender, recommender.rank(users, lookup, k=k, rerank=True), relevant, n_items, k)


def evaluate_ranked(recommender: Recommender, ranked: Ranked, relevant: list[np.ndarray], n_items: int,
                    k: int = 10) -> dict[str, Any]:
    """:func:`evaluate` of lists already ranked."""
    cands = ranked.candidates
    metrics: dict[str, Any] = topk_metrics(ranked.items, relevant, k)
    metrics["ci95"] = topk_intervals(ranked.items, relevant, k)  # bootstrap over test users
    metrics["before_rerank"] = topk_metrics(ranked.before_rerank, relevant, k)
    metrics["before_rerank"]["ci95"] = topk_intervals(ranked.before_rerank, relevant, k)
    width = recommender.settings.candidates
    metrics[f"candidate_recall@{width}"] = candidate_recall(cands.items, relevant)
    metrics["candidate_recall_by_source"] = {name: candidate_recall(items, relevant)
                                             for name, items in cands.per_source.items()}
    metrics["coverage"] = catalogue_coverage(ranked.items, n_items)
    metrics["diversity"] = intra_list_diversity(ranked.items, recommender.genres)
    metrics["diversity_before_rerank"] = intra_list_diversity(ranked.before_rerank, recommender.genres)
    # New items: no rating in the data the candidate models saw, so only the content tower can propose them.
    new = [r[recommender.popularity[r] == 0] for r in relevant]
    metrics["new_items"] = {"test_pairs": int(sum(len(r) for r in new)),
                            f"candidate_recall@{width}": candidate_recall(cands.items, new),
                            f"recall@{k}": candidate_recall(ranked.items, new)}
    metrics["users"] = int(sum(len(r) > 0 for r in relevant))
    return metrics


@dataclass(frozen=True)
class Trained:
    """A protocol's outcome: the pipeline it evaluated, its ranker (promoted or not), the time its
    training data ends, the time the ranker's label window starts (its end under protocol A), and
    each validation user's held-out nDCG@10 under the ranker and under the co-visitation order
    (``"ranker"``, ``"co_visitation"``)."""

    model: Recommender
    ranker: LambdaMART
    as_of_s: int
    labels_from_s: int
    valid_ndcg: dict[str, np.ndarray]


def run_protocol(data: MovieLens, fit: Phase, label: pd.DataFrame, full: Phase, test: pd.DataFrame, home: Path,
                 settings: RecsSettings, say: Progress, seed: int = 0,
                 engine: FitEngine | None = None) -> tuple[Trained, dict[str, Any]]:
    """Fit candidates on ``fit``, the ranker on ``label``; refit on ``full``; evaluate on ``test``.

    ``engine`` fits the two-tower models and the rankers (embedded by default)."""
    rows = np.arange(data.n_users)
    covis = choose_co_visitation(data, fit.ratings, label) if settings.tune_co_visitation else {"chosen": {}}
    if settings.tune_co_visitation:
        chosen = covis["chosen"]
        say(f"co-visitation chosen on validation: L2 {chosen['regularization']:g}, dropout {chosen['dropout']:g}, "
            f"{'zero diagonal' if chosen['zero_diagonal'] else 'unconstrained'} "
            f"(nDCG@10 {covis['valid_ndcg@10']:.4f})")
    latent, early_latent = choose_latent(data, fit.ratings, label, covis["chosen"], settings, seed)
    if latent["tried"]:
        say(f"BiVAE blended into co-visitation at weight {latent['chosen']:g}, chosen on validation "
            f"(nDCG@10 {latent['valid_ndcg@10']:.4f}; without it "
            f"{latent['grid'][0]['valid_ndcg@10']:.4f})")
    say("candidate models on the ranker's training phase")
    early, early_report = fit_recommender(data, fit, settings, seed, engine=engine, co_visitation=covis["chosen"],
                                          latent_weight=latent["chosen"], latent=early_latent)
    store = PhaseStore(data, fit, home / "fit")
    say("ranker")
    fit_users, label_relevant = users_of(data, user_items(fit.ratings, data.n_users), rows), relevant_sets(label, rows)
    ranker, ranker_report, valid_ndcg = train_ranker(early, fit_users, store.lookup(), label_relevant, seed,
                                                     engine=engine)
    labelled = np.flatnonzero([len(r) > 0 for r in label_relevant])
    mmr = choose_mmr(early, users_of(data, user_items(fit.ratings, data.n_users), labelled), store.lookup(),
                     [label_relevant[u] for u in labelled])
    store.close()
    say(f"  ranker 5-fold nDCG@10 {ranker_report['valid_ndcg@10_ranker']:.4f} vs co-visitation order "
        f"{ranker_report['valid_ndcg@10_co_visitation']:.4f} (gain's 95% lower bound "
        f"{ranker_report['valid_gain_lower_bound']:+.4f}): {'promoted' if ranker_report['promoted'] else 'kept out'}")
    say(f"re-ranking: MMR lambda {mmr['chosen']:g}, chosen on validation (nDCG@10 {mmr['valid_ndcg@10']:.4f}; "
        + ", ".join(f"{row['mmr_lambda']:g}: {row['valid_ndcg@10']:.4f}" for row in mmr["grid"]) + ")")
    settings = replace(settings, mmr_lambda=mmr["chosen"])
    say("candidate models on all training data")
    final, final_report = fit_recommender(data, full, settings, seed, engine=engine, co_visitation=covis["chosen"],
                                          latent_weight=latent["chosen"])
    final.ranker = ranker if ranker_report["promoted"] else None
    store = PhaseStore(data, full, home / "full")
    say("evaluation")
    histories = user_items(full.ratings, data.n_users)
    relevant = relevant_sets(test, rows)
    tested = np.flatnonzero([len(r) > 0 for r in relevant])
    test_users, test_relevant = users_of(data, histories, tested), [relevant[u] for u in tested]
    ranked = final.rank(test_users, store.lookup(), k=10, rerank=True)
    metrics = evaluate_ranked(final, ranked, test_relevant, data.n_items)
    metrics["ablation"] = ablation(final, ranker, test_users, store.lookup(), test_relevant, ranked)
    cold = np.array([len(histories[u]) == 0 for u in tested])
    if cold.any():
        metrics["cold_start_users"] = int(cold.sum())
        metrics["cold_start"] = evaluate(final, users_of(data, histories, tested[cold]), store.lookup(),
                                         [relevant[u] for u in tested[cold]], data.n_items)
    store.close()
    metrics["training"] = {"two_tower": {k: v for k, v in final_report.items() if k != "loss_history"},
                           "two_tower_loss": final_report["loss_history"], "ranker": ranker_report,
                           "co_visitation": covis, "latent": latent, "mmr": mmr,
                           "early_two_tower_seconds": early_report["seconds"]}
    return Trained(final, ranker, full.as_of_s, fit.as_of_s, valid_ndcg), metrics


def split_a(data: MovieLens, split_seed: int = SPLIT_SEEDS[0]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Protocol A's training and test ratings: Microsoft Recommenders' benchmark split."""
    ratings = data.ratings
    train_mask = stratified_split(ratings, 0.75, by="item", seed=split_seed)
    return ratings[train_mask], ratings[~train_mask]


def protocol_a(data: MovieLens, home: Path, settings: RecsSettings, say: Progress, seed: int = 0,
               split_seed: int = SPLIT_SEEDS[0], engine: FitEngine | None = None) -> tuple[Trained, dict[str, Any]]:
    ratings = data.ratings
    train, test = split_a(data, split_seed)
    inner = per_user_split(train.reset_index(drop=True), ratio=0.8, seed=seed + 1)
    train = train.reset_index(drop=True)
    end = int(ratings["timestamp"].max()) + 1
    return run_protocol(data, Phase(train[inner], end), train[~inner], Phase(train, end), test, home, settings, say,
                        seed, engine)


def protocol_b(data: MovieLens, home: Path, settings: RecsSettings, say: Progress, seed: int = 0,
               test_share: float = 0.2, label_share: float = 0.1,
               engine: FitEngine | None = None) -> tuple[Trained, dict[str, Any]]:
    ratings = data.ratings
    stamps = ratings["timestamp"].to_numpy()
    cut = int(np.quantile(stamps, 1 - test_share))
    label_start = int(np.quantile(stamps, 1 - test_share - label_share))
    before_label, label = ratings[stamps < label_start], ratings[(stamps >= label_start) & (stamps < cut)]
    trained, metrics = run_protocol(data, Phase(before_label, label_start), label, Phase(ratings[stamps < cut], cut),
                                  ratings[stamps >= cut], home, settings, say, seed, engine)
    metrics["cut_off"] = pd.Timestamp(cut, unit="s").isoformat()
    metrics["ranker_labels_from"] = pd.Timestamp(label_start, unit="s").isoformat()
    return trained, metrics


def run_recs(home: Path, data_root: str | None, dataset: str = "ml-100k", settings: RecsSettings | None = None,
             say: Progress = print, data: MovieLens | None = None, peers: tuple[str, ...] = (),
             engine: FitEngine | None = None) -> dict[str, Any]:
    """Both protocols on one MovieLens release (or ``data``): ``{"protocol_a": ..., "protocol_b": ...}`` and,
    under ``_protocol_a`` / ``_protocol_b``, what each trained (:class:`Trained`).

    ``peers`` (names of :data:`~mlsd.systems.recs.peers.PEERS`): protocol A is run on every split seed
    of :data:`SPLIT_SEEDS`, each peer beside the pipeline on each split, with the same users and metric
    code; ``protocol_a`` keeps seed 42's metrics plus ``ndcg@10_seeds`` (mean, sd, n), and ``peers``
    each peer's nDCG@10 mean over seeds, their sd and seed 42's intervals. ``engine`` fits the
    two-tower models and the rankers (embedded by default).
    """
    data = data if data is not None else load_movielens(dataset, data_root)
    settings = settings or RecsSettings()
    results: dict[str, Any] = {"dataset": dataset, "settings": settings.__dict__}
    for name, protocol in (("protocol_a", protocol_a), ("protocol_b", protocol_b)):
        say(f"{name}:" + (f" split seed {SPLIT_SEEDS[0]}" if peers and name == "protocol_a" else ""))
        started = time.perf_counter()
        trained, metrics = protocol(data, home / name, settings, lambda m: say(f"  {m}"), engine=engine)
        metrics["seconds"] = time.perf_counter() - started
        results[name] = metrics
        results[f"_{name}"] = trained
        if peers and name == "protocol_a":
            from mlsd.systems.recs.peers import protocol_a_with_peers

            results["peers"] = protocol_a_with_peers(data, home / name, settings, metrics, peers, say, engine)
    return results


MODEL_NAME = "recs-movielens"
