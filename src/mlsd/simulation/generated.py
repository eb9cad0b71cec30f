"""Generated data with a known structure: user-item preferences and graded queries, for engine comparisons.

Both sets are drawn from a seed, so two training engines can be fed exactly the same rows and
compared on the same held-out part: the tests that hold the Ray engine to the embedded one and the
scale-out benchmarks use them. Neither is a benchmark of model quality.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from mlsd.training.models.two_tower import ItemInputs, TowerConfig, UserInputs, pad_histories


@dataclass(frozen=True)
class Preferences:
    """(user, item) training pairs drawn from latent-factor tastes, each user's later items held out."""

    users: UserInputs
    items: ItemInputs
    pair_users: np.ndarray
    pair_items: np.ndarray
    held_out: list[np.ndarray]

    @property
    def user_items(self) -> list[np.ndarray]:
        """Each user's training items (a two-tower history source)."""
        order = np.argsort(self.pair_users, kind="stable")
        cuts = np.searchsorted(self.pair_users[order], np.arange(len(self.users.ids) + 1))
        return [self.pair_items[order[a:b]] for a, b in itertools.pairwise(cuts)]

    def tower_config(self, **settings: object) -> TowerConfig:
        return TowerConfig(n_users=len(self.users.ids), n_items=len(self.items.ids), user_vocab=(3,),
                           item_vocab=(4,), item_dense=self.items.dense.shape[1], **settings)  # type: ignore[arg-type]

    def top_k(self, user_vectors: np.ndarray, item_vectors: np.ndarray, k: int = 10) -> np.ndarray:
        """Each user's ``k`` best-scoring items not among their training pairs."""
        scores = user_vectors @ item_vectors.T
        scores[self.pair_users, self.pair_items] = -np.inf
        return np.argsort(-scores, axis=1)[:, :k]

    def histories(self, length: int = 50) -> UserInputs:
        """The users with their training items as histories (how the tower scores them)."""
        return UserInputs(self.users.ids, self.users.categorical, pad_histories(self.user_items, length))


def preferences(users: int = 800, items: int = 400, per_user: int = 40, held_out: int = 5, dim: int = 8,
                seed: int = 0) -> Preferences:
    """Each user picks ``per_user`` distinct items with probability softmax(taste . item + popularity)."""
    rng = np.random.default_rng(seed)
    taste, item = rng.normal(size=(users, dim)), rng.normal(size=(items, dim))
    logits = 0.8 * taste @ item.T + rng.normal(size=items)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    # distinct draws per user without a Python loop over items: Gumbel top-k of log p
    picks = np.argsort(-(np.log(p) + rng.gumbel(size=p.shape)), axis=1)[:, :per_user]
    kept = per_user - held_out
    return Preferences(UserInputs(np.arange(users), rng.integers(0, 3, (users, 1)), np.zeros((0, 0))),
                       ItemInputs(np.arange(items), rng.integers(0, 4, (items, 1)), item[:, :2].astype(np.float32)),
                       np.repeat(np.arange(users), kept), picks[:, :kept].reshape(-1),
                       list(picks[:, kept:]))


@dataclass(frozen=True)
class GradedQueries:
    """Query groups of documents with graded relevance (0-2) from a noisy known utility."""

    columns: dict[str, np.ndarray]
    labels: np.ndarray
    groups: np.ndarray

    @property
    def features(self) -> list[str]:
        return list(self.columns)


def graded_queries(queries: int, seed: int = 0, documents: int = 20, features: int = 8) -> GradedQueries:
    """``queries`` groups of ``documents / 2`` to ``1.5 x documents`` rows; utility linear plus one interaction."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(documents // 2, documents * 3 // 2, queries)
    x = rng.normal(size=(int(sizes.sum()), features)).astype(np.float32)
    utility = x @ np.linspace(1, 0.1, features) + 0.5 * x[:, 0] * x[:, 1] + rng.normal(size=len(x))
    labels = np.digitize(utility, [1.0, 2.0]).astype(np.float32)
    return GradedQueries({f"f{j}": x[:, j] for j in range(features)}, labels, sizes)
