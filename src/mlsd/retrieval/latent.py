"""A latent-factor candidate scorer: a bilateral VAE trained with cornac, served from its weights in NumPy.

BiVAE (Truong, Salah & Lauw, WSDM 2021) encodes a user's row of the interaction matrix and an item's
column into latent means; a user-item score is the dot product of the two (cornac's ``score`` puts a
sigmoid on it, which does not change an order). Training runs cornac's own ``BiVAECF`` (the model
Microsoft Recommenders benchmarks); what is kept is the user encoder (one hidden layer and the mean
head) and every item's latent mean, so serving needs neither cornac nor torch and a user's vector is
recomputed from their current history: a rating taken a moment ago changes it at once.

:func:`blend` adds such a scorer to another (co-visitation) on a common scale: each user's scores are
standardized over the catalogue before the weighted sum, so a weight means the same whatever the
two models' raw ranges.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class BiVAEScorer:
    """``scores(h) = mean_head(tanh(h @ hidden_w.T + hidden_b)) @ item_means.T`` for 0/1 history rows ``h``."""

    hidden_w: np.ndarray  # (hidden, n_items)
    hidden_b: np.ndarray  # (hidden,)
    mean_w: np.ndarray  # (k, hidden)
    mean_b: np.ndarray  # (k,)
    item_means: np.ndarray  # (n_items, k); zeros for an item the training data never saw

    @classmethod
    def fit(cls, interactions: np.ndarray, *, k: int = 100, hidden: int = 200, epochs: int = 500,
            batch_size: int = 1024, learning_rate: float = 0.001, seed: int = 0) -> BiVAEScorer:
        """Train on (users, items) 0/1 ``interactions`` with Poisson likelihood (Microsoft Recommenders'
        ML-100K settings by default) and keep the served weights, in the matrix's item order."""
        import cornac

        users, items = np.nonzero(interactions)
        triples = list(zip(users.astype(str).tolist(), items.astype(str).tolist(), [1.0] * len(users), strict=True))
        model = cornac.models.BiVAECF(k=k, encoder_structure=[hidden], act_fn="tanh", likelihood="pois",
                                      n_epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                      use_gpu=False, verbose=False)
        model.fit(cornac.data.Dataset.from_uir(triples, seed=seed))
        return cls.from_cornac(model, interactions.shape[1])

    @classmethod
    def from_cornac(cls, model: Any, n_items: int) -> BiVAEScorer:
        """The served weights of a fitted ``cornac.models.BiVAECF`` whose item ids are ``str`` of 0..n_items-1."""
        net = model.bivae
        layers = [m for m in net.user_encoder if hasattr(m, "weight")]
        if len(layers) != 1 or type(net.act_fn).__name__ != "Tanh":  # what user_vectors computes
            raise ValueError("BiVAEScorer serves one tanh hidden layer")
        order = np.array([int(i) for i in model.train_set.item_ids])  # cornac's column -> our item
        hidden = layers[0].weight.shape[0]
        hidden_w = np.zeros((hidden, n_items), np.float32)
        hidden_w[:, order] = layers[0].weight.detach().numpy()
        item_means = np.zeros((n_items, net.mu_beta.shape[1]), np.float32)
        item_means[order] = net.mu_beta.detach().numpy()
        return cls(hidden_w, layers[0].bias.detach().numpy().astype(np.float32),
                   net.user_mu.weight.detach().numpy().astype(np.float32),
                   net.user_mu.bias.detach().numpy().astype(np.float32), item_means)

    def user_vectors(self, histories: np.ndarray) -> np.ndarray:
        """Latent means of (users, items) 0/1 (or boolean) history rows."""
        rows = np.asarray(histories, np.float32)
        return np.asarray(np.tanh(rows @ self.hidden_w.T + self.hidden_b) @ self.mean_w.T + self.mean_b)

    def scores(self, histories: np.ndarray) -> np.ndarray:
        """Scores for every item, from (users, items) 0/1 (or boolean) history rows."""
        return np.asarray(self.user_vectors(histories) @ self.item_means.T)

    def save(self, path: Path) -> None:
        np.savez(path, hidden_w=self.hidden_w, hidden_b=self.hidden_b, mean_w=self.mean_w, mean_b=self.mean_b,
                 item_means=self.item_means)

    @classmethod
    def load(cls, path: Path) -> BiVAEScorer:
        with np.load(path) as arrays:
            return cls(arrays["hidden_w"], arrays["hidden_b"], arrays["mean_w"], arrays["mean_b"],
                       arrays["item_means"])


def standardize(scores: np.ndarray) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (a constant row becomes zeros)."""
    values = np.asarray(scores, np.float64)
    spread = values.std(axis=1, keepdims=True)
    return np.asarray((values - values.mean(axis=1, keepdims=True)) / np.where(spread > 0, spread, 1.0))


def blend(first: np.ndarray, second: np.ndarray, weight: float) -> np.ndarray:
    """``standardize(first) + weight * standardize(second)``, row by row (float32)."""
    return (standardize(first) + weight * standardize(second)).astype(np.float32)
