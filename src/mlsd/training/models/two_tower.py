"""A two-tower retrieval model in PyTorch: user and item towers trained with in-batch negatives and log-Q correction.

The user tower reads the user id, categorical attributes and the mean embedding of the watch history;
the item tower reads the item id, categorical attributes and dense content (e.g. genres, year). Both
end in L2-normalized vectors, so a dot product is a cosine and any inner-product ANN index serves them.

Training: each batch of (user, item) pairs treats the other items of the batch as negatives. Popular
items are over-sampled as negatives, so each logit gets ``- log q(item)`` (its share of training pairs),
the log-Q correction of sampled softmax. Ids are dropped to "unknown" with probability ``id_dropout``,
so a new user (attributes, maybe a history) or a new item (content only) still gets a useful vector:
the cold-start path. A history never contains the pair's own item.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from mlsd.core.progress import progress


@dataclass(frozen=True)
class TowerConfig:
    """Sizes and training settings of a :class:`TwoTower` model."""

    n_users: int
    n_items: int
    user_vocab: tuple[int, ...]  # sizes of the user's categorical attributes
    item_vocab: tuple[int, ...]
    item_dense: int  # width of the item's dense content block
    dim: int = 64
    hidden: int = 128
    temperature: float = 0.05
    history: int = 50
    id_dropout: float = 0.1
    epochs: int = 25
    batch: int = 512
    lr: float = 3e-3
    weight_decay: float = 1e-6
    seed: int = 0


@dataclass(frozen=True)
class UserInputs:
    """One row per user: id (-1 = unknown), categorical codes (-1 = unknown), history (n, L) item ids (-1 = pad)."""

    ids: np.ndarray
    categorical: np.ndarray
    history: np.ndarray


@dataclass(frozen=True)
class ItemInputs:
    """One row per item: id (-1 = unknown: a new item), categorical codes, dense content (float32)."""

    ids: np.ndarray
    categorical: np.ndarray
    dense: np.ndarray


def _shift(codes: np.ndarray, vocab: tuple[int, ...] | int) -> torch.Tensor:
    """Codes with -1 = unknown become indices with 0 = unknown; a code outside its vocabulary is unknown too.

    ``vocab``: the size of each column's vocabulary (one int for a single column of ids). A served
    request may carry a value training never saw (an occupation code its schema allows): it must
    take the unknown embedding, never index past the table.
    """
    shifted = np.asarray(codes, dtype=np.int64) + 1
    sizes = np.asarray(vocab, dtype=np.int64)
    return torch.as_tensor(np.where((shifted > 0) & (shifted <= sizes), shifted, 0))


class _Tower(nn.Module):
    def __init__(self, n_ids: int, vocab: tuple[int, ...], dense: int, history_items: int, config: TowerConfig) -> None:
        super().__init__()
        d = config.dim
        self.ids = nn.Embedding(n_ids + 1, d)
        self.fields = nn.ModuleList(nn.Embedding(v + 1, d // 4) for v in vocab)
        self.history = nn.EmbeddingBag(history_items + 1, d, mode="sum", padding_idx=0) if history_items else None
        width = d + len(vocab) * (d // 4) + dense + (d if history_items else 0)
        self.mlp = nn.Sequential(nn.Linear(width, config.hidden), nn.ReLU(), nn.Linear(config.hidden, d))
        for table in (self.ids, *self.fields):
            nn.init.normal_(table.weight, std=0.05)

    def forward(self, ids: torch.Tensor, categorical: torch.Tensor, dense: torch.Tensor | None = None,
                history: torch.Tensor | None = None) -> torch.Tensor:
        parts = [self.ids(ids)] + [field(categorical[:, j]) for j, field in enumerate(self.fields)]
        if dense is not None:
            parts.append(dense)
        if self.history is not None and history is not None:
            counts = (history > 0).sum(1, keepdim=True).clamp(min=1)
            parts.append(self.history(history) / counts)  # mean over the real (non-pad) items
        return F.normalize(self.mlp(torch.cat(parts, dim=1)), dim=1)


class TwoTower(nn.Module):
    """User and item towers; :meth:`user_vectors` and :meth:`item_vectors` give normalized float32 arrays."""

    def __init__(self, config: TowerConfig) -> None:
        super().__init__()
        self.config = config
        self.user_tower = _Tower(config.n_users, config.user_vocab, 0, config.n_items, config)
        self.item_tower = _Tower(config.n_items, config.item_vocab, config.item_dense, 0, config)

    def forward(self, user_ids: torch.Tensor, user_codes: torch.Tensor, history: torch.Tensor,
                item_ids: torch.Tensor, item_codes: torch.Tensor, item_dense: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both towers on shifted inputs (0 = unknown): the (user, item) vectors of a training batch."""
        return self.user_tower(user_ids, user_codes, history=history), self.item_tower(item_ids, item_codes, item_dense)

    def _users(self, users: UserInputs) -> torch.Tensor:
        history = torch.as_tensor(np.asarray(users.history, dtype=np.int64)[:, -self.config.history:] + 1)
        codes = _shift(users.categorical, self.config.user_vocab)
        return self.user_tower(_shift(users.ids, self.config.n_users), codes, history=history)  # type: ignore[no-any-return]

    def _items(self, items: ItemInputs) -> torch.Tensor:
        dense = torch.as_tensor(np.asarray(items.dense, dtype=np.float32))
        codes = _shift(items.categorical, self.config.item_vocab)
        return self.item_tower(_shift(items.ids, self.config.n_items), codes, dense)  # type: ignore[no-any-return]

    @torch.no_grad()
    def user_vectors(self, users: UserInputs) -> np.ndarray:
        if self.training:  # eval() walks every submodule: ~0.2 ms, a tenth of a served request
            self.eval()
        return self._users(users).numpy().astype(np.float32)

    @torch.no_grad()
    def item_vectors(self, items: ItemInputs, batch: int = 65_536) -> np.ndarray:
        self.eval()
        n = len(items.ids)
        parts = [self._items(ItemInputs(items.ids[s:s + batch], items.categorical[s:s + batch],
                                        items.dense[s:s + batch])).numpy() for s in range(0, n, batch)]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, self.config.dim), np.float32)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "two_tower.json").write_text(json.dumps(asdict(self.config)))
        torch.save(self.state_dict(), directory / "two_tower.pt")

    @classmethod
    def load(cls, directory: Path) -> TwoTower:
        raw = json.loads((directory / "two_tower.json").read_text())
        config = TowerConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})  # type: ignore[arg-type]
        model = cls(config)
        model.load_state_dict(torch.load(directory / "two_tower.pt", weights_only=True))
        model.eval()
        return model


class UserVectorMemo:
    """:meth:`TwoTower.user_vectors` for single users, memoized on the exact inputs (id, codes, history).

    A served user's tower inputs change only when their attributes or history do, so the same vector is
    recomputed on every request; a PyTorch forward for one row costs more in dispatch than in arithmetic.
    The key is the inputs themselves, so a changed history or attribute misses and is computed afresh.
    Batches of several users go straight to the model. At most ``max_entries`` vectors are kept (oldest
    dropped first). Safe for one writer at a time plus readers (dict operations are atomic under the GIL).
    """

    def __init__(self, tower: TwoTower, max_entries: int = 100_000) -> None:
        self.tower, self.max_entries = tower, max_entries
        self._vectors: dict[bytes, np.ndarray] = {}
        self.hits = self.misses = 0

    def __call__(self, users: UserInputs) -> np.ndarray:
        if len(users.ids) != 1:
            return self.tower.user_vectors(users)
        key = b"".join(np.ascontiguousarray(a, dtype=np.int64).tobytes()
                       for a in (users.ids, users.categorical, users.history))
        vector = self._vectors.get(key)
        if vector is not None:
            self.hits += 1
            return vector
        self.misses += 1
        vector = self.tower.user_vectors(users)
        vector.setflags(write=False)  # shared by every later request of this user
        if len(self._vectors) >= self.max_entries:
            self._vectors.pop(next(iter(self._vectors)))
        self._vectors[key] = vector
        return vector


def pad_histories(user_items: list[np.ndarray], length: int) -> np.ndarray:
    """(n_users, length) item ids, right-aligned, the last ``length`` of each list (-1 = pad)."""
    out = np.full((len(user_items), length), -1, dtype=np.int64)
    for u, items in enumerate(user_items):
        kept = items[len(items) - length:] if len(items) > length else items
        out[u, length - len(kept):] = kept
    return out


def sample_histories(user_items: list[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """Like :func:`pad_histories`, with a random subset of each longer list (a fresh one every epoch)."""
    return pad_histories([items if len(items) <= length else rng.choice(items, length, replace=False)
                          for items in user_items], length)


def item_log_q(pair_items: np.ndarray, n_items: int) -> torch.Tensor:
    """log q(item): each item's share of the training pairs (1 for an unseen item), the log-Q correction."""
    frequency = np.bincount(pair_items, minlength=n_items).astype(np.float64)
    return torch.as_tensor(np.log(np.maximum(frequency, 1) / frequency.sum()), dtype=torch.float32)


Gather = Callable[[torch.Tensor], torch.Tensor]


def in_batch_loss(user_vec: torch.Tensor, item_vec: torch.Tensor, items: torch.Tensor, log_q: torch.Tensor,
                  temperature: float, gather: Gather | None = None, rank: int = 0) -> torch.Tensor:
    """Sampled-softmax loss of each user against every item of the batch, log-Q corrected.

    ``gather`` (data-parallel training) concatenates a tensor across workers, rank order, keeping
    gradients: each worker's users then score against the whole global batch's items, so the
    negatives are those of the embedded batch, and this worker's targets sit at ``rank * len(items)``.
    """
    targets = torch.arange(len(items))
    if gather is not None:
        item_vec, all_items, targets = gather(item_vec), gather(items), targets + rank * len(items)
    else:
        all_items = items
    logits = user_vec @ item_vec.T / temperature - log_q[all_items].unsqueeze(0)
    # The same item twice in a batch is not a negative of itself.
    duplicate = all_items.unsqueeze(0) == items.unsqueeze(1)
    duplicate[torch.arange(len(items)), targets] = False
    return F.cross_entropy(logits.masked_fill(duplicate, float("-inf")), targets)


def tower_epochs(model: TwoTower, users: UserInputs, items: ItemInputs, pair_users: np.ndarray, pair_items: np.ndarray,
                 user_items: list[np.ndarray], log_q: torch.Tensor, rng: np.random.Generator, *, batch: int,
                 forward: nn.Module | None = None, gather: Gather | None = None, rank: int = 0) -> list[float]:
    """The training loop both engines run: epochs over the pairs in a fresh order; the mean loss per epoch.

    ``forward`` is the module the towers run through (a data-parallel wrapper of ``model`` under Ray
    Train); ``gather`` and ``rank``: see :func:`in_batch_loss`. Histories are resampled every epoch
    from ``user_items`` and never contain the pair's own item.
    """
    config = model.config
    net = forward if forward is not None else model
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    item_dense = torch.as_tensor(np.asarray(items.dense, dtype=np.float32))
    item_cat = _shift(items.categorical, config.item_vocab)
    user_cat = _shift(users.categorical, config.user_vocab)
    losses = []
    model.train()
    for _ in progress(range(config.epochs), desc="two-tower epochs", unit="epoch"):
        history = torch.as_tensor(sample_histories(user_items, config.history, rng) + 1)
        order = rng.permutation(len(pair_users))
        total = 0.0
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            u = torch.as_tensor(pair_users[rows])
            i = torch.as_tensor(pair_items[rows])
            user_ids, item_ids = u + 1, i + 1
            if config.id_dropout:
                user_ids = torch.where(torch.rand(len(u)) < config.id_dropout, 0, user_ids)
                item_ids = torch.where(torch.rand(len(i)) < config.id_dropout, 0, item_ids)
            seen = history[u]
            seen = torch.where(seen == (i + 1).unsqueeze(1), 0, seen)  # the target never sits in its own history
            user_vec, item_vec = net(user_ids, user_cat[u], seen, item_ids, item_cat[i], item_dense[i])
            loss = in_batch_loss(user_vec, item_vec, i, log_q, config.temperature, gather, rank)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        losses.append(total / max(len(order), 1))
    model.eval()
    return losses


def train_two_tower(config: TowerConfig, users: UserInputs, items: ItemInputs, pair_users: np.ndarray,
                    pair_items: np.ndarray, user_items: list[np.ndarray]) -> tuple[TwoTower, dict[str, Any]]:
    """Fit on (user, item) positive pairs; ``user_items`` are each user's training items (the history source).

    This is the embedded fit; :meth:`mlsd.training.engine.FitEngine.fit_two_tower` picks the engine.
    """
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = TwoTower(config)
    started = time.perf_counter()
    losses = tower_epochs(model, users, items, pair_users, pair_items, user_items,
                          item_log_q(pair_items, config.n_items), rng, batch=config.batch)
    return model, {"epochs": config.epochs, "loss_history": losses, "seconds": time.perf_counter() - started,
                   "pairs": len(pair_users)}
