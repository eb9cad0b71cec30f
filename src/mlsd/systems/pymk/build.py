"""``mlsd run pymk``: the three protocols, then the served system: friendships -> ranker -> batch precompute.

The service is built from protocol (b)'s split: the kept 80% of ego-Facebook's friendships are
ingested as events (validated, deduplicated, one event per side), the ranker and Adamic–Adar are
registered (promotion on per-user validation nDCG@10), and the champion's top-20 list of every user
is precomputed in one batch, written as a Parquet table and materialized to the online store. The
hidden 20% are the future: ``mlsd replay pymk`` asks each user with hidden friends for a list and
sends those friends back as labels, so the online nDCG@10 is protocol (b)'s, through the service.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy import sparse

from mlsd.core.atomic import atomic_write_json
from mlsd.core.timeutil import US_PER_S
from mlsd.evaluation.repeats import mean_sd
from mlsd.events import EventLog, Ingestor
from mlsd.monitoring.online import PREDICTION
from mlsd.monitoring.profile import DatasetProfile, NumericProfile
from mlsd.registry import Lineage, code_revision
from mlsd.registry.promotion import promote
from mlsd.system import Workspace
from mlsd.systems.pymk import train
from mlsd.systems.pymk.data import (
    COLLECTED_S,
    EDGE_SCHEMA,
    FACEBOOK,
    EgoProfiles,
    college_messages,
    edge_events,
    ego_profiles,
    facebook_edges,
)
from mlsd.systems.pymk.features import (
    FRIENDS_VIEW,
    LIST_K,
    LISTS_POSITION,
    LISTS_VERSION,
    LISTS_VIEW,
    pymk_views,
    write_lists,
)
from mlsd.systems.pymk.graph import GraphFeatures, adjacency
from mlsd.systems.pymk.model import FriendModel

MODEL_NAME = "pymk-facebook"
PROFILE_FILE = "profile.json"
MONITORED = ("degree_min", "degree_max")
TRAFFIC_FILE = "traffic.json"
SEED = 0


def directed(edges: np.ndarray) -> np.ndarray:
    """Each friendship once per side (``user_id -> friend_id`` both ways)."""
    return np.concatenate([edges, edges[:, ::-1]])


def link_prediction(edges: np.ndarray, seeds: int, say: train.Progress,
                    profiles: EgoProfiles | None = None, *, small: bool = False) -> dict[str, Any]:
    runs = []
    for seed in range(seeds):
        runs.append(train.link_prediction(edges, seed, profiles, walk_grid=((1.0, 1.0),) if small else train.WALK_GRID))
        walk = runs[-1]["walk"]
        say(f"  (a) seed {seed}: ranker AUC {runs[-1]['auc']:.4f}, Adamic–Adar {runs[-1]['adamic_adar_auc']:.4f} "
            f"(walks p={walk['p']:g}, q={walk['q']:g}, chosen on the fitting pairs)")
    auc = mean_sd(r["auc"] for r in runs)
    adamic = mean_sd(r["adamic_adar_auc"] for r in runs)
    first = runs[0]
    return {"auc": first["auc"], "auc_ci95": first["auc_ci95"], "adamic_adar_auc": first["adamic_adar_auc"],
            "adamic_adar_auc_ci95": first["adamic_adar_auc_ci95"], "test_pairs": first["test_pairs"],
            "seeds": {"auc_mean": auc[0], "auc_sd": auc[1], "adamic_adar_auc_mean": adamic[0],
                      "adamic_adar_auc_sd": adamic[1], "n": seeds},
            "runs": runs}


def build_pymk(ws: Workspace, data: str | None, *, small: bool = False, progress: bool = True) -> dict[str, Any]:
    say: train.Progress = print if progress else (lambda _: None)
    started = time.perf_counter()
    ws.home.mkdir(parents=True, exist_ok=True)
    edges = facebook_edges(data)
    profiles = ego_profiles(data, int(edges.max()) + 1)
    say(f"ego-Facebook: {len(edges):,} friendships, {int(edges.max()) + 1:,} users; {profiles.attributes.shape[1]:,} "
        f"profile attributes and {profiles.circles.shape[1]} circles from the ego networks")
    results: dict[str, Any] = {"node2vec_protocol": link_prediction(edges, 1 if small else 3, say, profiles,
                                                                               small=small)}
    # the quick build (the check kit's) keeps a small bag of short fits
    recommend, split = train.recommendation(edges, SEED, members=1 if small else train.BAG, profiles=profiles,
                                            rounds=100 if small else 1000)
    results["recommend"] = recommend
    say(f"  (b) nDCG@10 ranker {recommend['ndcg@10']:.4f}, Adamic–Adar {recommend['adamic_adar_ndcg@10']:.4f}")
    if not small:
        results["temporal"] = train.temporal(college_messages(data), SEED)
        c = results["temporal"]
        say(f"  (c) AP ranker {c['ap']:.4f}, Adamic–Adar {c['adamic_adar_ap']:.4f}, recency {c['recency_ap']:.4f}")
    with EventLog(ws.events("friendships"), EDGE_SCHEMA) as log:
        report = Ingestor(log).ingest_table(edge_events(directed(split.kept)), FACEBOOK)
        say(f"ingested {report.accepted:,} friendship events (each friendship once per side; {report.duplicates:,} "
            f"already in the log, {report.rejected} rejected); {len(split.hidden):,} friendships held out as traffic")
        lineage = Lineage(f"{FACEBOOK}:{len(log)}", {FRIENDS_VIEW: 1, LISTS_VIEW: 1}, code_revision())
        models = {"gbdt": FriendModel("gbdt", split.graph.embeddings, split.ranker, profiles=profiles),
                  "adamic_adar": FriendModel("adamic_adar", split.graph.embeddings)}
        scores, names = {}, {}
        for family, model in models.items():
            lists = train.top_lists(split.found.users, split.found.friends, model.score(split.found.columns), LIST_K)
            profile = ws.home / "profiles" / family / PROFILE_FILE
            profile.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(profile, list_profile(lists, split.graph.degree).to_dict())
            version = ws.registry.register(
                MODEL_NAME, model, params={"family": family, "candidates": model.cap, **(
                    split.ranker.params if family == "gbdt" else {})},
                metrics={"test_ndcg_at_10": recommend["ndcg@10" if family == "gbdt" else "adamic_adar_ndcg@10"]},
                lineage=lineage, experiment="pymk", run_name=family, artifacts=[profile])
            scores[version.version] = split.validation[family]
            names[version.version] = family
        promotion = promote(ws.registry, MODEL_NAME, scores)
        champion = names[promotion.chosen]
        lists, seconds, rows = precompute(models[champion], adjacency(split.kept, int(edges.max()) + 1))
        results["precompute"] = {"users": len(lists), "seconds": round(seconds, 3), "candidate_rows": rows,
                                 "rows_per_s": round(rows / seconds), "list_length": LIST_K}
        say(f"batch precompute ({champion}): {len(lists):,} users, {rows:,} candidate pairs scored in "
            f"{seconds:.2f} s ({rows / seconds:,.0f} rows/s)")
        at_us = COLLECTED_S * US_PER_S
        write_lists(lists, at_us, ws.home / "lists")
        store = ws.feature_store(pymk_views(log, ws.home / "lists"))
        store.materialize(end_us=at_us + 1)
        store.online.set_meta(LISTS_POSITION, str(len(log)))  # the lists reflect every friendship logged so far
        store.online.set_meta(LISTS_VERSION, promotion.chosen)  # the model version that made them
        store.online.close()
    results["served"] = {"champion": promotion.champion, "champion_family": champion,
                         "challenger": promotion.challenger, "versions": names, "lists_version": promotion.champion,
                         "promoted_on": "per-user validation nDCG@10 (a fifth of the users, one level down)"}
    results["replay_requests"] = write_traffic(ws, split.hidden)
    say(f"champion v{promotion.champion} ({champion}), chosen on validation nDCG@10 "
        f"({', '.join(f'{names[v]} {np.mean(s):.4f}' for v, s in scores.items())})")
    results["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_json(ws.run_file, results)
    return results


def precompute(model: FriendModel, matrix: sparse.csr_matrix, embeddings: np.ndarray | None = None
               ) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], float, int]:
    """The batch job over the friendship graph ``matrix``: its products, every user's candidates and
    features, scores, top-20 lists.

    ``embeddings``: the model's node vectors for every node of ``matrix`` (default: the model's own, which
    cover the graph it was trained on). Returns the lists, the seconds it took and the candidate pairs scored.
    """
    started = time.perf_counter()
    graph = GraphFeatures.build(matrix, model.embeddings if embeddings is None else embeddings, model.profiles)
    found = train.candidates(graph, model.cap)
    lists = train.top_lists(found.users, found.friends, model.score(found.columns), LIST_K)
    # Every user gets a list, an empty one when they have no friend of a friend: the lookup answers them too.
    nothing = (np.zeros(0, np.int64), np.zeros(0))
    lists = {user: lists.get(user, nothing) for user in range(matrix.shape[0])}
    return lists, time.perf_counter() - started, len(found.users)


def list_profile(lists: dict[int, tuple[np.ndarray, np.ndarray]], degree: np.ndarray) -> DatasetProfile:
    """The monitored columns of every listed friend (first 10 of each list) and their scores."""
    users = np.concatenate([np.full(min(len(f), train.K), u) for u, (f, _) in lists.items()])
    friends = np.concatenate([f[: train.K] for f, _ in lists.values()])
    du, dv = degree[users], degree[friends]
    profile = DatasetProfile.build({"degree_min": np.minimum(du, dv), "degree_max": np.maximum(du, dv)})
    profile.columns[PREDICTION] = NumericProfile.build(np.concatenate([s[: train.K] for _, s in lists.values()]))
    return profile


def write_traffic(ws: Workspace, hidden: np.ndarray) -> int:
    """Each user with held-out friends, in id order, with those friends (the replay's labels)."""
    relevant: dict[int, list[int]] = {}
    for u, v in hidden.tolist():
        relevant.setdefault(u, []).append(v)
        relevant.setdefault(v, []).append(u)
    users = sorted(relevant)
    atomic_write_json(ws.home / TRAFFIC_FILE, {"requests": [[u, sorted(relevant[u])] for u in users]})
    return len(users)
