"""The recommender: candidate generation (two-tower ANN, co-visitation, popularity) -> ranking -> re-ranking.

One :class:`Recommender` serves both the offline evaluation (many users at once) and the HTTP service
(one user): the same candidate code, the same ranking columns, the same re-ranking. Feature-store
values arrive through a :data:`FeatureLookup`, point-in-time offline or from the online store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mlsd.retrieval.ann import HnswIndex, VectorIndex, load_index
from mlsd.retrieval.candidates import CoVisitation, top_k_excluding
from mlsd.retrieval.latent import BiVAEScorer, blend
from mlsd.training.models.lambdamart import LambdaMART
from mlsd.training.models.two_tower import TwoTower, UserInputs, UserVectorMemo, pad_histories

SOURCES = ("two_tower", "co_visitation", "popularity")
# A candidate's stage name from its source flags: flags @ SOURCE_BITS indexes STAGE_NAMES.
SOURCE_BITS = 1 << np.arange(len(SOURCES))
STAGE_NAMES = ["+".join(name for j, name in enumerate(SOURCES) if code >> j & 1) for code in range(1 << len(SOURCES))]
# Columns computed from the candidates, besides the feature-store columns (see ranking_columns).
CANDIDATE_COLUMNS = ("covis_score", "covis_rank", "tt_score", "tt_rank", "pop_rank", "from_two_tower",
                     "from_co_visitation", "from_popularity", "genre_affinity", "last_item_similarity")
STORE_COLUMNS = ("user_history__ratings", "user_history__mean_rating", "user_history__seconds_since_last",
                 "user_profile__age", "user_profile__gender", "user_profile__occupation",
                 "item_popularity__count_7d", "item_popularity__count_30d", "item_popularity__count_all",
                 "item_popularity__mean_rating", "item_profile__year")
LAST_ITEMS = tuple(f"user_history__last_item_{n}" for n in range(1, 6))
# Raw scores and counts grow with the data the models saw: the ranker is trained on candidate models
# fitted on part of the training data and then serves refitted ones, so it reads these columns
# relative to the best candidate of the same list instead (see _relative).
RELATIVE_COLUMNS = ("covis_score", "tt_score", "item_popularity__count_7d", "item_popularity__count_30d",
                    "item_popularity__count_all")
RANKING_FEATURES = (*(c for c in (*CANDIDATE_COLUMNS, *STORE_COLUMNS) if c not in RELATIVE_COLUMNS),
                    *(f"{c}_relative" for c in RELATIVE_COLUMNS))

# (user_ids, candidate item_ids (users, k)) -> feature-store columns: user columns (users,), item columns (users, k)
FeatureLookup = Callable[[np.ndarray, np.ndarray], tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]


@dataclass(frozen=True)
class RecsSettings:
    """How many candidates each source gives, the list size, and the re-ranking knobs."""

    two_tower_k: int = 250
    co_visitation_k: int = 250
    popularity_k: int = 100
    candidates: int = 500
    mmr_lambda: float = 0.9  # 1 = relevance only; lower trades relevance for genre diversity (run: on validation)
    freshness: float = 0.05  # multiplicative boost for an item released within freshness_years
    freshness_years: float = 1.0
    ranking_depth: int = 200  # the ranker scores candidates in the top this many of co-visitation or two-tower
    tune_co_visitation: bool = True  # choose the co-visitation model's settings on validation (else its defaults)
    latent_epochs: int = 500  # BiVAE's training epochs; 0: no latent model blended into co-visitation


@dataclass
class Users:
    """A batch of users: dense ids (-1 = unknown), original ids, attribute codes, seen items (dense ids)."""

    ids: np.ndarray
    user_ids: np.ndarray
    categorical: np.ndarray
    seen: list[np.ndarray]
    history_length: int = 50

    def tower_inputs(self) -> UserInputs:
        return UserInputs(self.ids, self.categorical, pad_histories(self.seen, self.history_length))

    def seen_matrix(self, n_items: int) -> np.ndarray:
        """``(users, n_items)`` booleans: True where the user has rated the item."""
        seen = np.zeros((len(self.seen), n_items), dtype=bool)
        for u, items in enumerate(self.seen):
            seen[u, items] = True
        return seen


@dataclass
class Candidates:
    """Per user ``k`` candidate items (dense ids, -1 = none), their sources and source scores."""

    items: np.ndarray
    sources: np.ndarray  # (users, k, 3) bool: which source proposed each candidate
    per_source: dict[str, np.ndarray]  # each source's own ranked list (for candidate recall)
    user_vectors: np.ndarray
    covis_scores: np.ndarray  # (users, n_items): co-visitation (+ BiVAE) score of every item, reused by ranking
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Ranked:
    """Final lists: items (users, k), scores and the stage that proposed each item."""

    items: np.ndarray
    scores: np.ndarray
    stages: list[list[str]]
    before_rerank: np.ndarray
    timings: dict[str, float]
    candidates: Candidates
    features: list[dict[str, list[float | None]]]  # per user: the ranking features of the listed items


class Recommender:
    """Everything a trained recommender needs; saved and registered as one directory."""

    def __init__(self, tower: TwoTower, item_vectors: np.ndarray, covis: CoVisitation, popularity: np.ndarray,
                 genres: np.ndarray, years: np.ndarray, item_ids: np.ndarray, user_ids: np.ndarray,
                 settings: RecsSettings, index: VectorIndex | None = None, ranker: LambdaMART | None = None,
                 latent: BiVAEScorer | None = None, latent_weight: float = 0.0) -> None:
        self.tower, self.item_vectors, self.covis = tower, item_vectors, covis
        self.latent, self.latent_weight = latent, latent_weight
        self.popularity, self.genres, self.years, self.item_ids = popularity, genres, years, item_ids
        self.settings, self.ranker, self.user_ids = settings, ranker, user_ids
        if index is None:
            index = HnswIndex(item_vectors.shape[1])
            index.add(item_vectors)
        self.index = index
        self.user_vectors = UserVectorMemo(tower)  # a served user's vector is recomputed only when its inputs change
        self.item_index = np.full(int(item_ids.max()) + 2, -1, np.int64)
        self.item_index[item_ids] = np.arange(len(item_ids))
        self.by_popularity = np.argsort(-popularity, kind="stable")
        self.pop_rank = np.empty(len(popularity), np.float64)
        self.pop_rank[self.by_popularity] = np.arange(len(popularity))
        self.genre_unit = genres / np.maximum(np.linalg.norm(genres, axis=1, keepdims=True), 1e-12)
        self.latest_year = float(np.nanmax(years)) if np.isfinite(years).any() else float("nan")

    def dense_user(self, user_id: int) -> int:
        """The user's row in the two-tower id table, -1 if the model never saw the user."""
        position = int(np.searchsorted(self.user_ids, user_id))
        return position if position < len(self.user_ids) and self.user_ids[position] == user_id else -1

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def dense_items(self, item_ids: np.ndarray) -> np.ndarray:
        """Dense item indices of original ids (-1 for unknown or missing ids)."""
        ids = np.asarray(item_ids, dtype=np.float64)
        inside = (ids >= 0) & (ids < len(self.item_index))  # False for NaN too
        return np.where(inside, self.item_index[np.where(inside, ids, 0).astype(np.int64)], -1)

    # -- candidate generation --------------------------------------------------------------------
    def candidates(self, users: Users) -> Candidates:
        s, n = self.settings, len(users.ids)
        seen = users.seen_matrix(self.n_items)
        started = time.perf_counter()
        vectors = self.user_vectors(users.tower_inputs())
        depth = min(self.n_items, s.two_tower_k + int(seen.sum(1).max(initial=0)))
        _, found = self.index.search(vectors, depth)
        tt = np.full((n, s.two_tower_k), -1, np.int64)
        for u in range(n):
            row = found[u][(found[u] >= 0)]
            row = row[~seen[u, row]][: s.two_tower_k]
            tt[u, : len(row)] = row
        t_tt = time.perf_counter()
        covis_scores = self.collaborative_scores(seen)
        covis, _ = top_k_excluding(covis_scores, seen, s.co_visitation_k)
        t_covis = time.perf_counter()
        popular = np.full((n, min(s.popularity_k, self.n_items)), -1, np.int64)
        for u in range(n):  # the catalogue's fixed popularity order, minus what the user has seen
            row = self.by_popularity[~seen[u, self.by_popularity]][: popular.shape[1]]
            popular[u, : len(row)] = row
        merged = np.full((n, s.candidates), -1, np.int64)
        sources = np.zeros((n, s.candidates, len(SOURCES)), bool)
        proposed = np.zeros((len(SOURCES), self.n_items), bool)  # which source proposed each item, per user
        for u in range(n):
            lists = [x[x >= 0] for x in (tt[u], covis[u], popular[u])]
            unique, first = np.unique(np.concatenate(lists), return_index=True)
            chosen = unique[np.argsort(first, kind="stable")][: s.candidates]
            merged[u, : len(chosen)] = chosen
            for j, source in enumerate(lists):
                proposed[j, source] = True
            sources[u, : len(chosen)] = proposed[:, chosen].T
            proposed[:] = False
        timings = {"two_tower_ms": (t_tt - started) * 1e3, "co_visitation_ms": (t_covis - t_tt) * 1e3,
                   "merge_ms": (time.perf_counter() - t_covis) * 1e3}
        return Candidates(merged, sources, {"two_tower": tt, "co_visitation": covis, "popularity": popular},
                          vectors, covis_scores, timings)

    def collaborative_scores(self, seen: np.ndarray) -> np.ndarray:
        """The co-visitation source's scores of every item: EASE's, blended with the latent model's
        (each standardized per user, :func:`~mlsd.retrieval.latent.blend`) when one was chosen on validation."""
        scores = self.covis.scores(seen)
        if self.latent is None or self.latent_weight <= 0:
            return scores
        return blend(scores, self.latent.scores(seen), self.latent_weight)

    # -- ranking ---------------------------------------------------------------------------------
    def ranking_columns(self, users: Users, cands: Candidates, lookup: FeatureLookup) -> dict[str, np.ndarray]:
        """One row per (user, candidate slot), flattened user-major; empty slots are NaN rows."""
        items = cands.items
        n, k = items.shape
        valid = items >= 0
        safe = np.where(valid, items, 0)
        profile = np.zeros((n, self.genres.shape[1]), np.float32)
        for u, seen in enumerate(users.seen):
            if len(seen):
                profile[u] = self.genres[seen].mean(0)
        vectors = self.item_vectors[safe]  # (n, k, d)
        covis = np.take_along_axis(cands.covis_scores, safe, 1)
        tt = np.matmul(vectors, cands.user_vectors[:, :, None])[..., 0]
        user_cols, item_cols = lookup(users.user_ids, np.where(valid, self.item_ids[safe], -1))
        last = self.dense_items(np.stack([user_cols[name] for name in LAST_ITEMS], axis=1))  # (n, 5), -1 = none
        # (n, k, 5) cosines to the user's last items; the best of those that exist, NaN if none does
        similarity = np.matmul(vectors, self.item_vectors[np.maximum(last, 0)].transpose(0, 2, 1))
        similarity = np.where((last >= 0)[:, None, :], similarity, -np.inf).max(axis=2)
        computed = np.stack([
            covis, _rank_desc(np.where(valid, covis, -np.inf)), tt, _rank_desc(np.where(valid, tt, -np.inf)),
            self.pop_rank[safe], cands.sources[..., 0], cands.sources[..., 1], cands.sources[..., 2],
            np.matmul(self.genre_unit[safe], profile[:, :, None])[..., 0],
            np.where(np.isfinite(similarity), similarity, np.nan),
        ]).astype(np.float64)
        if not valid.all():
            computed[:, ~valid] = np.nan
        out = dict(zip(CANDIDATE_COLUMNS, computed.reshape(len(CANDIDATE_COLUMNS), -1), strict=True))
        for name, values in user_cols.items():
            if name in STORE_COLUMNS:
                out[name] = np.repeat(np.asarray(values, np.float64), k)
        for name, values in item_cols.items():
            out[name] = np.asarray(values, np.float64).reshape(-1)
        relative = _relative(np.stack([out[name] for name in RELATIVE_COLUMNS]).reshape(-1, n, k))
        out.update(zip((f"{name}_relative" for name in RELATIVE_COLUMNS), relative.reshape(len(RELATIVE_COLUMNS), -1),
                       strict=True))
        return out

    def rank(self, users: Users, lookup: FeatureLookup, k: int = 10, rerank: bool = True) -> Ranked:
        started = time.perf_counter()
        cands = self.candidates(users)
        t_cand = time.perf_counter()
        columns = self.ranking_columns(users, cands, lookup)
        t_feat = time.perf_counter()
        n, width = cands.items.shape
        rankable = self.rankable(columns, width) & (cands.items >= 0)
        if self.ranker is not None:  # trees cost per row: only the rankable candidates are scored
            rows = np.flatnonzero(rankable.reshape(-1))
            scores = np.full(n * width, -np.inf)
            scores[rows] = self.ranker.predict({name: columns[name][rows] for name in self.ranker.features})
            scores = scores.reshape(n, width)
        else:  # before a ranker exists (its own training run), co-visitation orders the candidates
            scores = np.where(rankable, columns["covis_score"].reshape(n, width), -np.inf)
        t_rank = time.perf_counter()
        order = np.argsort(-scores, axis=1, kind="stable")
        before = np.take_along_axis(cands.items, order, 1)[:, :k]
        top_items, top_scores, stages, logged = [], [], [], []
        for u in range(n):
            chosen = self.rerank(cands.items[u], scores[u], k) if rerank else order[u][:k]
            chosen = chosen[cands.items[u][chosen] >= 0]
            rows = u * width + chosen
            logged.append({name: [None if v != v else v for v in values[rows].tolist()]
                           for name, values in columns.items()})
            top_items.append(_pad(cands.items[u][chosen], k))
            top_scores.append(_pad(scores[u][chosen], k, np.nan))
            stages.append([STAGE_NAMES[code] for code in (cands.sources[u, chosen] @ SOURCE_BITS).tolist()])
        timings = {**cands.timings, "candidates_ms": (t_cand - started) * 1e3, "features_ms": (t_feat - t_cand) * 1e3,
                   "ranking_ms": (t_rank - t_feat) * 1e3, "rerank_ms": (time.perf_counter() - t_rank) * 1e3}
        return Ranked(np.array(top_items), np.array(top_scores), stages, before, timings, cands, logged)

    def rankable(self, columns: dict[str, np.ndarray], width: int) -> np.ndarray:
        """(users, width) mask of the candidates the ranker orders: near the top of either learned source."""
        prior = np.fmin(columns["covis_rank"], columns["tt_rank"]).reshape(-1, width)
        return np.asarray(prior < self.settings.ranking_depth)

    # -- re-ranking ------------------------------------------------------------------------------
    def rerank(self, items: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        """Positions of the final ``k``: a freshness boost, then maximal marginal relevance over genres.

        Seen items never reach this point (candidates exclude them). MMR picks, one at a time, the item
        maximizing ``λ·relevance - (1-λ)·max genre cosine to the items already picked``; relevance is the
        boosted score scaled to [0, 1] within the list.
        """
        s = self.settings
        live = np.flatnonzero((items >= 0) & np.isfinite(scores))
        if not len(live):
            return live
        pool = live[np.argsort(-scores[live], kind="stable")][: max(5 * k, 50)]
        relevance = scores[pool].astype(np.float64)
        year = self.years[items[pool]]
        # Fresh = released within freshness_years of the catalogue's newest release.
        recent = (self.latest_year - year) < s.freshness_years  # False for an unknown year (NaN)
        relevance = relevance * (1.0 + s.freshness * recent)
        span = relevance.max() - relevance.min()
        relevance = (relevance - relevance.min()) / span if span > 0 else np.ones_like(relevance)
        genres = self.genre_unit[items[pool]]
        picked: list[int] = []
        closest = np.zeros(len(pool))
        available = np.ones(len(pool), bool)
        for _ in range(min(k, len(pool))):
            gain = np.where(available, s.mmr_lambda * relevance - (1 - s.mmr_lambda) * closest, -np.inf)
            best = int(np.argmax(gain))
            picked.append(best)
            available[best] = False
            closest = np.maximum(closest, genres @ genres[best])
        return pool[np.array(picked, dtype=np.int64)]

    # -- persistence ----------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.tower.save(directory / "two_tower")
        np.save(directory / "item_vectors.npy", self.item_vectors)
        self.index.save(directory / "items.hnsw")
        self.covis.save(directory / "co_visitation.npy")
        np.savez(directory / "items.npz", popularity=self.popularity, genres=self.genres, years=self.years,
                 item_ids=self.item_ids, user_ids=self.user_ids)
        if self.ranker is not None:
            self.ranker.save(directory / "ranker")
        if self.latent is not None:
            self.latent.save(directory / "bivae.npz")
        (directory / "recommender.json").write_text(json.dumps({"settings": asdict(self.settings),
                                                                "ranker": self.ranker is not None,
                                                                "latent_weight": self.latent_weight}))

    @classmethod
    def load(cls, directory: Path) -> Recommender:
        meta = json.loads((directory / "recommender.json").read_text())
        items = np.load(directory / "items.npz")
        ranker = LambdaMART.load(directory / "ranker") if meta["ranker"] else None
        latent = BiVAEScorer.load(directory / "bivae.npz") if (directory / "bivae.npz").exists() else None
        return cls(TwoTower.load(directory / "two_tower"), np.load(directory / "item_vectors.npy"),
                   CoVisitation.load(directory / "co_visitation.npy"), items["popularity"], items["genres"],
                   items["years"], items["item_ids"], items["user_ids"], RecsSettings(**meta["settings"]),
                   load_index(directory / "items.hnsw"), ranker, latent, float(meta.get("latent_weight", 0.0)))


def _rank_desc(values: np.ndarray) -> np.ndarray:
    """0-based rank of each value within its row, best first."""
    order = np.argsort(-values, axis=1, kind="stable")
    ranks = np.empty_like(order)
    ranks[np.arange(len(values))[:, None], order] = np.arange(values.shape[1])
    return ranks


def _relative(values: np.ndarray) -> np.ndarray:
    """Each row (last axis) divided by its largest value (NaN-aware; a row whose largest is <= 0 is left as is).

    Scores are non-negative in practice (counts, co-visitation sums, cosines near the top); a ratio to
    the best candidate is invariant to the growth of these values with more data.
    """
    top = np.where(np.isnan(values), -np.inf, values).max(axis=-1, keepdims=True)
    positive = top > 0
    return np.where(positive, values / np.where(positive, top, 1.0), values)


def _pad(values: np.ndarray, k: int, fill: float = -1) -> np.ndarray:
    out = np.full(k, fill, dtype=np.float64 if np.isnan(fill) else np.int64)
    out[: len(values)] = values
    return out


