"""``mlsd run recs``: both protocols, then the protocol-B pipelines registered, promoted and made servable.

The service starts where protocol B's training data ends: its feature store holds the ratings
before the cut-off (materialized online as of the cut-off), each user's seen items are a snapshot
of them, and the ratings after the cut-off are kept aside as the traffic ``mlsd replay recs`` sends
(see :mod:`mlsd.systems.recs.simulate`). Two rankers are registered, each with a reference profile
of the features it ranks with: the pipeline with the LambdaMART ranker and the one ordering
candidates by co-visitation. The co-visitation order is the incumbent; the ranker becomes champion
only when its held-out per-user nDCG@10 gain has a 95% bootstrap lower bound above zero (the
platform's :func:`~mlsd.registry.promotion.promote`); the other is the challenger of A/B tests.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlsd.core.atomic import atomic_write_json
from mlsd.datasets.movielens import MovieLens, load_movielens
from mlsd.monitoring.online import PREDICTION
from mlsd.monitoring.profile import DatasetProfile, NumericProfile
from mlsd.registry import Lineage, code_revision
from mlsd.registry.promotion import promote
from mlsd.system import Workspace
from mlsd.systems.recs.pipeline import Recommender, RecsSettings, Users
from mlsd.systems.recs.run import MODEL_NAME, Phase, PhaseStore, Trained, run_recs, user_items, users_of
from mlsd.training.engine import FitEngine

SERVING = "serving"
HELD_OUT_FILE = "held_out.parquet"
PROFILE_FILE = "profile.json"
# The request features the monitor compares with the reference (per listed item).
MONITORED = ("covis_score", "tt_score", "pop_rank", "genre_affinity", "last_item_similarity",
             "user_history__ratings", "user_profile__age", "item_popularity__count_30d", "item_profile__year")
PROFILE_USERS = 400
VARIANTS = ("ranker", "co_visitation")


def build_recs(ws: Workspace, data_root: str | None, dataset: str, *, quiet: bool = False,
               users: int | None = None, peers: tuple[str, ...] = (), engine: FitEngine | None = None
               ) -> dict[str, Any]:
    """``mlsd run recs``: both protocols, then protocol B's two rankers registered and the service prepared.

    ``users``: keep only the first this many users (a quick build for the check kit). ``peers``: see
    :func:`~mlsd.systems.recs.run.run_recs`. ``engine`` fits the two-tower models and rankers (embedded by default).
    """
    started = time.perf_counter()

    def say(message: str) -> None:
        if not quiet:
            print(message, flush=True)

    data = load_movielens(dataset, data_root)
    settings = None
    if users is not None:
        data = first_users(data, users)
        settings = RecsSettings(two_tower_k=50, co_visitation_k=50, popularity_k=20, candidates=100, ranking_depth=50,
                                latent_epochs=20)  # a quick build: the BiVAE only has to run
    results = run_recs(ws.home, data_root, dataset, say=say, data=data, settings=settings, peers=peers, engine=engine)
    trained: Trained = results.pop("_protocol_b")
    results.pop("_protocol_a")
    say("registering protocol B's rankers and preparing the service")
    results["served"] = prepare_serving(ws, data, trained, results["protocol_b"])
    results["seconds"] = time.perf_counter() - started
    atomic_write_json(ws.run_file, results)
    served = results["served"]
    say(f"model {MODEL_NAME} v{served['champion']} ({served['champion_variant']}) is champion, "
        f"v{served['challenger']} challenger; serve it: mlsd serve recs --home {ws.home}")
    return results


def first_users(data: MovieLens, n: int) -> MovieLens:
    """The release cut to its first ``n`` users (dense indices 0..n-1) and their ratings; every item kept."""
    users = data.users[data.users["user"] < n].reset_index(drop=True)
    ratings = data.ratings[data.ratings["user"] < n].reset_index(drop=True)
    return MovieLens(data.name, ratings, users, data.items, data.genres, data.genre_names)


def prepare_serving(ws: Workspace, data: MovieLens, trained: Trained, metrics: dict[str, Any]) -> dict[str, Any]:
    """Set up what the service reads as of protocol B's cut-off; register both rankers; promote on validation."""
    serving = ws.home / SERVING
    cut = trained.as_of_s
    stamps = data.ratings["timestamp"].to_numpy()
    before, after = data.ratings[stamps < cut], data.ratings[stamps >= cut]
    store = PhaseStore(data, Phase(before, cut), serving)
    store.store.materialize(end_us=store.as_of_us)
    seen = user_items(before, data.n_users)
    rated = np.flatnonzero([len(s) > 0 for s in seen])  # the users the service knows: the rest are cold-start
    np.savez(serving / "seen.npz", user_ids=data.users["user_id"].to_numpy(np.int64)[rated],
             lengths=np.array([len(seen[u]) for u in rated], np.int64),
             items=np.concatenate([np.zeros(0, np.int64), *(seen[u] for u in rated)]))
    pq.write_table(pa.Table.from_pandas(after[["user_id", "item_id", "rating", "timestamp"]], preserve_index=False),
                   serving / HELD_OUT_FILE)
    lineage = Lineage(f"{data.name}:{len(before)}:{cut}", {"user_history": 1, "item_popularity": 1}, code_revision())
    flat = {f"protocol_b.{k.replace('@', '_at_')}": float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    store.close()
    # The reference population: the users who came in the ranker's label window, each as of its start
    # (new users then are cold-start users, as many of the replayed ones are).
    early = data.ratings[stamps < trained.labels_from_s]
    came = np.unique(data.ratings["user"].to_numpy()[(stamps >= trained.labels_from_s) & (stamps < cut)])
    profile_store = PhaseStore(data, Phase(early, trained.labels_from_s), serving / "reference")
    profile_users = users_of(data, user_items(early, data.n_users), came[:PROFILE_USERS])
    versions: dict[str, str] = {}
    for variant in VARIANTS:
        model = trained.model
        model.ranker = trained.ranker if variant == "ranker" else None
        profile = serving / "profiles" / variant / PROFILE_FILE
        profile.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(profile, reference_profile(model, profile_store, profile_users).to_dict())
        version = ws.registry.register(
            MODEL_NAME, model, params={"dataset": data.name, "variant": variant, **model.settings.__dict__},
            metrics=flat if variant == "ranker" else {}, experiment="recs", run_name=variant, lineage=lineage,
            artifacts=[profile])
        versions[variant] = version.version
    profile_store.close()
    trained.model.ranker = trained.ranker if metrics["training"]["ranker"]["promoted"] else None  # as evaluated
    promotion = promote(ws.registry, MODEL_NAME, {versions[v]: trained.valid_ndcg[v] for v in VARIANTS},
                        incumbent=versions["co_visitation"])
    variant_of = {v: k for k, v in versions.items()}
    return {"champion": promotion.champion, "champion_variant": variant_of[promotion.chosen],
            "challenger": promotion.challenger, "versions": variant_of, "gain": promotion.gain,
            "gain_lower_bound": promotion.lower_bound, "cut_off_s": cut, "held_out_ratings": len(after),
            "valid_users": len(trained.valid_ndcg["ranker"])}


def reference_profile(model: Recommender, store: PhaseStore, users: Users) -> DatasetProfile:
    """The monitored features of the items ``model`` lists for ``users`` as of ``store``'s time, and its scores."""
    ranked = model.rank(users, store.lookup(), k=10)
    columns = {name: np.array([v for per_user in ranked.features for v in per_user[name]], dtype=np.float64)
               for name in MONITORED}
    profile = DatasetProfile.build(columns)
    scores = ranked.scores[np.isfinite(ranked.scores)]
    profile.columns[PREDICTION] = NumericProfile.build(scores)
    return profile
