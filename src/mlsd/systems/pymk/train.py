"""People-you-may-know protocols: node2vec's link prediction, top-10 friend recommendation, temporal contacts.

(a) node2vec's protocol on the whole ego-Facebook graph: a random spanning tree is kept (so the
residual graph stays connected) and 50% of all edges are hidden from the rest; as many non-edges
are sampled; features come from the residual graph only. The hidden edges and non-edges are split
in halves: the ranker is fitted on one (early-stopped on a fifth of it), ROC-AUC is measured on
the other, beside Adamic–Adar's on the same pairs. Mean ± sd over seeds. The walks' ``p`` and ``q``
are chosen on the fitting half (the embeddings' cosine AUC over a 3 x 3 grid); the other protocols
and the served model walk uniformly (p = q = 1): their own validation sets are not node2vec's.
(b) recommendation: each edge hidden with probability 0.2 (every user loses ~20% of their friends);
each user's candidates are friends of friends in the residual graph, the :data:`CANDIDATES` best
by Adamic–Adar; the ranker (a bag of LambdaMART fits, each user's candidates one query, over the
pair features and the list features of :func:`~mlsd.systems.pymk.model.list_features`) orders
them. It is fitted the same way one level down (20% of the residual's edges hidden again, labels =
those edges among that graph's candidates), never on the hidden test edges. recall@10, mAP@10
(Microsoft Recommenders' definition), nDCG@10 of the hidden friends, against Adamic–Adar's order,
with bootstrap intervals over users.
(c) temporal, CollegeMsg: messages in time order, cut at 70% and 85%; a contact is a pair that
messaged either way. The ranker is fitted on the first 70% (features) -> new contacts of the next
15% (labels), then scores the first 85% -> new contacts of the last 15%. Candidates are friends of
friends in the history; average precision over them against Adamic–Adar and a recency baseline
(the pair's least recently active member's last message time), with the share of new contacts
that are candidates at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from sklearn.metrics import average_precision_score, roc_auc_score

from mlsd.evaluation.significance import bootstrap_metric, paired_bootstrap_mean
from mlsd.systems.pymk.data import EgoProfiles
from mlsd.systems.pymk.graph import EGO_FEATURES, PAIR_FEATURES, GraphFeatures, adjacency, lookup, node_embeddings
from mlsd.systems.pymk.model import LIST_FEATURES, LinkRanker, list_features
from mlsd.training.models.lambdamart import LambdaMART, RankerBag

Progress = Callable[[str], None]
CANDIDATES = 100
K = 10
BAG = 5  # LambdaMART fits per top-k ranker (seeds): single early-stopped fits swing by +-0.006 nDCG@10
RANK_FEATURES = (*PAIR_FEATURES, *LIST_FEATURES)  # CollegeMsg's graph has no profiles: these alone
# node2vec's (p, q) tried in protocol (a): the paper's values 0.25, 1, 4 on each axis (~3 s a point here)
WALK_GRID = tuple((p, q) for p in (0.25, 1.0, 4.0) for q in (0.25, 1.0, 4.0))


def pair_features(profiles: EgoProfiles | None) -> tuple[str, ...]:
    """The pair features of a graph: with ego profiles, also what each pair shares."""
    return (*PAIR_FEATURES, *(EGO_FEATURES if profiles is not None else ()))


def rank_features(profiles: EgoProfiles | None) -> tuple[str, ...]:
    return (*pair_features(profiles), *LIST_FEATURES)
TEMPORAL_FEATURES = (*PAIR_FEATURES, "last_active_min", "last_active_max", "messages_min", "messages_max")


def hide_edges(edges: np.ndarray, share: float, rng: np.random.Generator, *, connected: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, hidden)``: ``share`` of the edges hidden; with ``connected``, never a random spanning tree's edge."""
    nodes = int(edges.max()) + 1
    eligible = np.ones(len(edges), bool)
    if connected:
        weights = sparse.csr_matrix((rng.random(len(edges)) + 1e-3, (edges[:, 0], edges[:, 1])), shape=(nodes, nodes))
        tree = csgraph.minimum_spanning_tree(weights).tocoo()
        tree_keys = set(zip(tree.row.tolist(), tree.col.tolist(), strict=True))
        eligible = np.array([(u, v) not in tree_keys for u, v in edges.tolist()])
    hidden = rng.choice(np.flatnonzero(eligible), size=round(share * len(edges)), replace=False)
    mask = np.zeros(len(edges), bool)
    mask[hidden] = True
    return edges[~mask], edges[mask]


def non_edges(full: sparse.csr_matrix, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct pairs ``u < v`` that are not edges of ``full``."""
    nodes = full.shape[0]
    found: set[tuple[int, int]] = set()
    while len(found) < count:
        u, v = rng.integers(0, nodes, (2, 2 * count))
        pairs = np.sort(np.column_stack([u, v]), axis=1)
        pairs = pairs[(pairs[:, 0] != pairs[:, 1])]
        pairs = pairs[np.asarray(full[pairs[:, 0], pairs[:, 1]]).ravel() == 0]
        found.update(map(tuple, pairs.tolist()))
    return np.array(sorted(found)[:count], np.int64)[rng.permutation(count)]


def features_of(matrix: sparse.csr_matrix, seed: int, profiles: EgoProfiles | None = None) -> GraphFeatures:
    return GraphFeatures.build(matrix, node_embeddings(matrix, seed=seed), profiles)


def choose_walk(matrix: sparse.csr_matrix, pairs: np.ndarray, labels: np.ndarray, seed: int,
                grid: tuple[tuple[float, float], ...] = WALK_GRID
                ) -> tuple[tuple[float, float], np.ndarray, dict[str, float]]:
    """node2vec's return ``p`` and in-out ``q``: the pair whose embeddings' cosine best separates ``labels``
    (ROC-AUC over ``pairs``, the ranker's training pairs: never the test half); ties keep the uniform walk.

    Returns the chosen ``(p, q)``, its node vectors (the ranker's embedding feature) and every point's AUC."""
    scores: dict[str, float] = {}
    best: tuple[tuple[float, bool], tuple[float, float], np.ndarray] | None = None
    for p, q in grid:
        vectors = node_embeddings(matrix, seed=seed, p=p, q=q)
        cosine = np.einsum("ij,ij->i", vectors[pairs[:, 0]], vectors[pairs[:, 1]])
        scores[f"p={p:g},q={q:g}"] = auc = float(roc_auc_score(labels, cosine))
        rank = (auc, (p, q) == (1.0, 1.0))
        if best is None or rank > best[0]:
            best = (rank, (p, q), vectors)
    assert best is not None, "an empty grid"
    return best[1], best[2], scores


def link_prediction(edges: np.ndarray, seed: int, profiles: EgoProfiles | None = None,
                    walk_grid: tuple[tuple[float, float], ...] = WALK_GRID) -> dict[str, Any]:
    """Protocol (a) with one seed: test ROC-AUC of the ranker and of Adamic–Adar, with bootstrap intervals.

    ``profiles``: the ego networks' attributes and circles, as pair features of the ranker. The walks'
    ``p`` and ``q`` are chosen from ``walk_grid`` on the fitting half of the pairs (:func:`choose_walk`)."""
    rng = np.random.default_rng(seed)
    nodes = int(edges.max()) + 1
    kept, hidden = hide_edges(edges, 0.5, rng, connected=True)
    negatives = non_edges(adjacency(edges, nodes), len(hidden), rng)
    pairs = np.concatenate([hidden, negatives])
    labels = np.concatenate([np.ones(len(hidden)), np.zeros(len(negatives))])
    order = rng.permutation(len(pairs))
    fit_part, test_part = order[: len(order) // 2], order[len(order) // 2:]
    residual = adjacency(kept, nodes)
    walk, vectors, walk_scores = choose_walk(residual, pairs[fit_part], labels[fit_part], seed, walk_grid)
    graph = GraphFeatures.build(residual, vectors, profiles)
    stop = fit_part[: len(fit_part) // 5]
    columns = graph.pairs(pairs[:, 0], pairs[:, 1])

    def rows(index: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[index] for k, v in columns.items()}
    fit_on = fit_part[len(stop):]
    ranker = LinkRanker(pair_features(profiles)).fit(rows(fit_on), labels[fit_on], rows(stop), labels[stop], seed=seed)
    scores, adamic = ranker.predict(rows(test_part)), columns["adamic_adar"][test_part]
    y = labels[test_part]
    return {"seed": seed, "auc": float(roc_auc_score(y, scores)),
            "auc_ci95": list(bootstrap_metric(roc_auc_score, y, scores)),
            "adamic_adar_auc": float(roc_auc_score(y, adamic)),
            "adamic_adar_auc_ci95": list(bootstrap_metric(roc_auc_score, y, adamic)), "hidden_edges": len(hidden),
            "test_pairs": len(test_part), "trees": ranker.params["trees"],
            "walk": {"p": walk[0], "q": walk[1], "fit_pairs_cosine_auc": walk_scores}}


@dataclass
class Candidates:
    """Each user's candidates (the best :data:`CANDIDATES` by Adamic–Adar) and their features."""

    users: np.ndarray
    friends: np.ndarray
    columns: dict[str, np.ndarray]


def candidates(graph: GraphFeatures, cap: int = CANDIDATES, users: np.ndarray | None = None) -> Candidates:
    """Friends-of-friends of every user (or of ``users``), cut to the ``cap`` best by Adamic–Adar."""
    u, v = graph.candidates()
    if users is not None:
        keep = np.isin(u, users)
        u, v = u[keep], v[keep]
    score = lookup(graph.adamic_adar, u, v)
    order = np.lexsort((v, -score, u))
    u, v = u[order], v[order]
    starts = np.searchsorted(u, u, side="left")
    keep = (np.arange(len(u)) - starts) < cap
    u, v = u[keep], v[keep]
    return Candidates(u, v, list_features(u, graph.pairs(u, v)))


def top_lists(users: np.ndarray, friends: np.ndarray, scores: np.ndarray, k: int) -> dict[int, tuple[np.ndarray,
                                                                                                     np.ndarray]]:
    """Each user's ``k`` best candidates (ties: the lower id) with their scores."""
    order = np.lexsort((friends, -scores, users))
    users, friends, scores = users[order], friends[order], scores[order]
    bounds = np.flatnonzero(np.diff(users)) + 1
    lists = {}
    for start, end in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(users)]]), strict=True):
        if end > start:
            lists[int(users[start])] = (friends[start:min(end, start + k)], scores[start:min(end, start + k)])
    return lists


def query_sizes(users: np.ndarray) -> np.ndarray:
    """Rows per user, for candidate rows grouped by user (LambdaMART's query groups)."""
    return np.diff(np.concatenate([[0], np.flatnonzero(np.diff(users)) + 1, [len(users)]]))


def fit_recommender(edges: np.ndarray, nodes: int, seed: int, members: int = BAG,
                    profiles: EgoProfiles | None = None, rounds: int = 1000) -> tuple[RankerBag, dict[str, np.ndarray]]:
    """The top-k ranker: LambdaMART fits on 20% of ``edges`` hidden, labels = those among the rest's candidates.

    Each user's candidates are one query. A fifth of the users are the validation slice (early
    stopping); returns the bag and the per-user validation nDCG@10 of it and of Adamic–Adar there.
    """
    rng = np.random.default_rng(seed + 1000)
    kept, hidden = hide_edges(edges, 0.2, rng)
    graph = features_of(adjacency(kept, nodes), seed, profiles)
    found = candidates(graph)
    truth = adjacency(hidden, nodes)
    labels = np.asarray(truth[found.users, found.friends]).ravel()
    users = np.unique(found.users)
    stop_users = np.sort(rng.choice(users, size=len(users) // 5, replace=False))
    stop = np.isin(found.users, stop_users)
    fit_on = ({k: v[~stop] for k, v in found.columns.items()}, labels[~stop], query_sizes(found.users[~stop]))
    subset = {k: v[stop] for k, v in found.columns.items()}
    check = (subset, labels[stop], query_sizes(found.users[stop]))
    fits = []
    for member in range(members):
        model = LambdaMART(rank_features(profiles), seed=seed * members + member, num_threads=2, eval_at=K,
                           rounds=rounds)
        model.fit(*fit_on, valid=check)
        fits.append(model)
    bag = RankerBag(fits, {"members": members})
    judged = stop_users[np.diff(truth.indptr)[stop_users] > 0]
    valid = {"gbdt": bag.predict(subset), "adamic_adar": subset["adamic_adar"]}
    return bag, {name: _per_user(top_lists(found.users[stop], found.friends[stop], score, K), truth, judged)
                 [f"ndcg@{K}"] for name, score in valid.items()}


def _per_user(lists: dict[int, tuple[np.ndarray, np.ndarray]], truth: sparse.csr_matrix, users: np.ndarray
              ) -> dict[str, np.ndarray]:
    recall, ap, ndcg = np.zeros(len(users)), np.zeros(len(users)), np.zeros(len(users))
    discount = 1.0 / np.log2(np.arange(2, K + 2))
    for n, user in enumerate(users.tolist()):
        relevant = truth.indices[truth.indptr[user]:truth.indptr[user + 1]]
        listed = lists.get(user, (np.zeros(0, np.int64), None))[0][:K]
        hits = np.isin(listed, relevant).astype(float)
        recall[n] = hits.sum() / len(relevant)
        ap[n] = (np.cumsum(hits) / np.arange(1, len(hits) + 1) * hits).sum() / len(relevant)
        ndcg[n] = (hits * discount[: len(hits)]).sum() / discount[: min(len(relevant), K)].sum()
    return {f"recall@{K}": recall, f"map@{K}": ap, f"ndcg@{K}": ndcg}


@dataclass
class Recommendation:
    """Protocol (b)'s graph, split and ranker: what the service is built from."""

    kept: np.ndarray
    hidden: np.ndarray
    graph: GraphFeatures
    found: Candidates
    ranker: RankerBag
    validation: dict[str, np.ndarray]  # per-user validation nDCG@10 of each scorer


def recommendation(edges: np.ndarray, seed: int, members: int = BAG, profiles: EgoProfiles | None = None,
                   rounds: int = 1000) -> tuple[dict[str, Any], Recommendation]:
    """Protocol (b): the ranker's and Adamic–Adar's top-10 friends-of-friends against each user's hidden friends.

    ``members`` LambdaMART fits in the bag, each of at most ``rounds`` trees (early-stopped on validation)."""
    rng = np.random.default_rng(seed)
    nodes = int(edges.max()) + 1
    kept, hidden = hide_edges(edges, 0.2, rng)
    ranker, validation = fit_recommender(kept, nodes, seed, members, profiles, rounds)
    graph = features_of(adjacency(kept, nodes), seed, profiles)
    found = candidates(graph)
    truth = adjacency(hidden, nodes)
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    scored = _per_user(top_lists(found.users, found.friends, ranker.predict(found.columns), K), truth, users)
    adamic = _per_user(top_lists(found.users, found.friends, found.columns["adamic_adar"], K), truth, users)
    out: dict[str, Any] = {"users": len(users), "hidden_edges": len(hidden),
                           "candidate_recall": float(np.asarray(truth[found.users, found.friends]).sum()
                                                     / (2 * len(hidden)))}
    for name, values in (("", scored), ("adamic_adar_", adamic)):
        for metric, per_user in values.items():
            mean, ci = paired_bootstrap_mean(per_user)
            out[f"{name}{metric}"], out[f"{name}{metric}_ci95"] = mean, list(ci)
    gain, gain_ci = paired_bootstrap_mean(scored[f"ndcg@{K}"] - adamic[f"ndcg@{K}"])
    out["ndcg_gain_over_adamic_adar"] = {"mean": gain, "ci95": list(gain_ci)}
    out["validation_ndcg@10"] = {name: float(v.mean()) for name, v in validation.items()}
    return out, Recommendation(kept, hidden, graph, found, ranker, validation)


def _contacts(messages: np.ndarray, nodes: int) -> sparse.csr_matrix:
    return adjacency(messages[:, :2], nodes) if len(messages) else sparse.csr_matrix((nodes, nodes))


def _temporal_columns(history: np.ndarray, nodes: int, graph: GraphFeatures, u: np.ndarray, v: np.ndarray
                      ) -> dict[str, np.ndarray]:
    last = np.zeros(nodes)
    np.maximum.at(last, history[:, 0], history[:, 2])
    np.maximum.at(last, history[:, 1], history[:, 2])
    last = last - history[-1, 2]  # seconds before the cut (0 = active at the cut)
    sent = np.bincount(history[:, :2].ravel(), minlength=nodes).astype(float)
    columns = graph.pairs(u, v)
    columns.update({"last_active_min": np.minimum(last[u], last[v]), "last_active_max": np.maximum(last[u], last[v]),
                    "messages_min": np.minimum(sent[u], sent[v]), "messages_max": np.maximum(sent[u], sent[v])})
    return columns


def _new_contacts(history: np.ndarray, future: np.ndarray, nodes: int) -> sparse.csr_matrix:
    known = _contacts(history, nodes)
    later = _contacts(future, nodes)
    return (later - later.multiply(known)).tocsr()


def temporal(messages: np.ndarray, seed: int) -> dict[str, Any]:
    """Protocol (c) on CollegeMsg: average precision of the ranker, Adamic–Adar and recency on new contacts."""
    messages = messages[messages[:, 0] != messages[:, 1]]
    nodes = int(messages[:, :2].max()) + 1
    first, second = int(0.70 * len(messages)), int(0.85 * len(messages))

    def stage(history: np.ndarray, future: np.ndarray) -> tuple[Candidates, np.ndarray, sparse.csr_matrix]:
        graph = features_of(_contacts(history, nodes), seed)
        found = candidates(graph)
        found.columns = _temporal_columns(history, nodes, graph, found.users, found.friends)
        new = _new_contacts(history, future, nodes)
        return found, np.asarray(new[found.users, found.friends]).ravel(), new

    fit_on, fit_labels, _ = stage(messages[:first], messages[first:second])
    rng = np.random.default_rng(seed)
    users = np.unique(fit_on.users)
    stop = np.isin(fit_on.users, rng.choice(users, size=len(users) // 5, replace=False))
    ranker = LinkRanker(TEMPORAL_FEATURES).fit({k: v[~stop] for k, v in fit_on.columns.items()}, fit_labels[~stop],
                                               {k: v[stop] for k, v in fit_on.columns.items()}, fit_labels[stop],
                                               seed=seed)
    test_on, labels, new = stage(messages[:second], messages[second:])
    scores = {"ap": ranker.predict(test_on.columns), "adamic_adar_ap": test_on.columns["adamic_adar"],
              "recency_ap": test_on.columns["last_active_min"]}
    out: dict[str, Any] = {"messages": len(messages), "candidates": len(labels), "new_contacts": int(new.nnz // 2),
                           "new_contacts_among_candidates": float(labels.sum() / max(new.nnz, 1))}
    for name, score in scores.items():
        out[name] = float(average_precision_score(labels, score))
        out[f"{name}_ci95"] = list(bootstrap_metric(average_precision_score, labels, score))
    out["positive_rate"] = float(labels.mean())
    return out
