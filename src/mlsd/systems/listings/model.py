"""The session recommender: candidates from a session's recent items, scored by a blend of four signals.

Candidates are the union (over the signals weighing above 0) of the last item's successors and
predecessors in training sessions (item transitions, a sparse matrix), the session's own recent items
(re-clicks are most of the next clicks on Diginetica), and the nearest items of the session's vector
in a FAISS HNSW index over the skip-gram item embeddings (the book's listing embeddings). A candidate's score is
``w_fwd * log1p(successor count) + w_bwd * log1p(predecessor count) + w_rec * recency + w_emb * cosine``
where recency is ``decay ** age`` of the item's latest place in the session and the session vector is
the recency-weighted mean of its items' embeddings. Only the last :data:`SESSION_ITEMS` clicks are
read, offline as online (the session state the stream feature store keeps).

Saved as safe files: ``transitions.npz`` (CSR arrays), ``embeddings.npy``, ``index.faiss``, ``model.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from mlsd.retrieval.ann import HnswIndex, VectorIndex, load_index
from mlsd.training.skipgram import skipgram_vectors

SESSION_ITEMS = 10
EMBEDDING_CANDIDATES = 100
SIGNALS = ("forward", "backward", "recency", "embedding")


@dataclass
class Recommendation:
    """One session's list: dense item numbers, scores and each signal's value per listed item."""

    items: np.ndarray
    scores: np.ndarray
    signals: dict[str, np.ndarray]


class SessionRecommender:
    """Next-item recommendations for a session from transitions, recency and item embeddings."""

    def __init__(self, item_ids: np.ndarray, transitions: sparse.csr_matrix, embeddings: np.ndarray,
                 weights: Mapping[str, float], *, decay: float = 0.5, popularity: np.ndarray | None = None,
                 params: Mapping[str, Any] | None = None, index: VectorIndex | None = None) -> None:
        self.item_ids = np.asarray(item_ids, np.int64)  # raw id of each dense number (0 unused: -1)
        self.transitions = transitions.tocsr()
        self.predecessors = self.transitions.T.tocsr()
        self.embeddings = np.asarray(embeddings, np.float32)
        self.weights = {s: float(weights.get(s, 0.0)) for s in SIGNALS}
        self.decay = decay
        self.popularity = (np.asarray(popularity, np.float64) if popularity is not None
                           else np.asarray(self.transitions.sum(axis=0)).ravel() + np.asarray(
                               self.transitions.sum(axis=1)).ravel())
        self.params = dict(params or {})
        self.dense = {int(raw): n for n, raw in enumerate(self.item_ids.tolist()) if raw >= 0}
        if index is None:
            index = HnswIndex(self.embeddings.shape[1])
            index.add(self.embeddings)
        self.index = index

    @property
    def items(self) -> int:
        return len(self.item_ids) - 1

    def with_weights(self, weights: Mapping[str, float]) -> SessionRecommender:
        """The same transitions, embeddings and index under other blend weights."""
        return SessionRecommender(self.item_ids, self.transitions, self.embeddings, weights, decay=self.decay,
                                  popularity=self.popularity, params=self.params, index=self.index)

    def dense_items(self, raw_ids: Sequence[int]) -> list[int]:
        """Dense numbers of the raw item ids the model knows (others are dropped), order kept."""
        return [self.dense[r] for r in raw_ids if r in self.dense]

    def recommend(self, session: Sequence[int], k: int = 20) -> Recommendation:
        """Top ``k`` for a session given as dense item numbers, oldest first (unknown items already dropped)."""
        recent = list(session)[-SESSION_ITEMS:]
        if not recent:  # nothing known about this session: the most popular items
            order = np.argsort(-self.popularity[1:], kind="stable")[:k] + 1
            zeros = np.zeros(len(order))
            return Recommendation(order, self.popularity[order], {s: zeros for s in SIGNALS})
        last = recent[-1]
        recency_of: dict[int, float] = {}
        for age, item in enumerate(reversed(recent)):
            recency_of.setdefault(item, self.decay ** age)
        fwd = self.transitions.getrow(last)
        bwd = self.predecessors.getrow(last)
        weights_by_age = self.decay ** np.arange(len(recent) - 1, -1, -1, dtype=np.float32)  # the last click: 1
        vector = (self.embeddings[recent] * weights_by_age[:, None]).sum(axis=0)
        norm = float(np.linalg.norm(vector))
        if norm > 0:
            vector /= norm
        w = self.weights  # a signal with weight 0 brings no candidates either (and costs no search)
        near: np.ndarray = np.zeros(0, np.int64)
        if norm > 0 and w["embedding"]:
            _, found = self.index.search(vector, min(EMBEDDING_CANDIDATES, self.index.size))
            near = found[0][found[0] > 0]
        sources = [fwd.indices if w["forward"] else (), bwd.indices if w["backward"] else (),
                   recent if w["recency"] else (), near if w["embedding"] else ()]
        candidates = np.unique(np.concatenate([np.asarray(s, np.int64) for s in sources]))
        candidates = candidates[candidates > 0]
        signals = {
            "forward": np.log1p(np.asarray(fwd[:, candidates].todense()).ravel()),
            "backward": np.log1p(np.asarray(bwd[:, candidates].todense()).ravel()),
            "recency": np.array([recency_of.get(int(c), 0.0) for c in candidates]),
            "embedding": self.embeddings[candidates] @ vector if norm > 0 else np.zeros(len(candidates)),
        }
        scores = sum(self.weights[s] * signals[s] for s in SIGNALS)
        assert isinstance(scores, np.ndarray)
        # ties (the same score) go to the more popular item, then the lower number: a stable order
        order = np.lexsort((candidates, -self.popularity[candidates], -scores))[:k]
        return Recommendation(candidates[order], scores[order], {s: v[order] for s, v in signals.items()})

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        t = self.transitions
        np.savez(directory / "transitions.npz", data=t.data, indices=t.indices, indptr=t.indptr,
                 shape=np.asarray(t.shape), item_ids=self.item_ids, popularity=self.popularity)
        np.save(directory / "embeddings.npy", self.embeddings)
        self.index.save(directory / "index.faiss")
        (directory / "model.json").write_text(json.dumps({"weights": self.weights, "decay": self.decay,
                                                          "params": self.params}))

    @classmethod
    def load(cls, directory: Path) -> SessionRecommender:
        meta = json.loads((directory / "model.json").read_text())
        with np.load(directory / "transitions.npz", allow_pickle=False) as arrays:
            shape = tuple(int(x) for x in arrays["shape"])
            transitions = sparse.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
            item_ids, popularity = arrays["item_ids"], arrays["popularity"]
        embeddings = np.load(directory / "embeddings.npy", allow_pickle=False)
        return cls(item_ids, transitions, embeddings, meta["weights"], decay=float(meta["decay"]),
                   popularity=popularity, params=meta["params"], index=load_index(directory / "index.faiss"))


def transition_matrix(sessions: Sequence[Sequence[int]], items: int) -> sparse.csr_matrix:
    """Counts of ``a`` followed directly by ``b`` in the sessions (dense numbers 1..items)."""
    rows = [a for seq in sessions for a in seq[:-1]]
    cols = [b for seq in sessions for b in seq[1:]]
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(items + 1, items + 1))


def skipgram_embeddings(sessions: Sequence[Sequence[int]], items: int, *, dim: int = 32, window: int = 3,
                        epochs: int = 30, negative: int = 5, seed: int = 0) -> np.ndarray:
    """Item vectors trained skip-gram style on click sessions, unit length; row 0 (no item) zeros."""
    return skipgram_vectors(sessions, items + 1, dim=dim, window=window, epochs=epochs, negative=negative, seed=seed)
