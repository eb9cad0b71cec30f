"""Click models in PyTorch (CPU): logistic regression, field-aware FM and DCN-v2, one training loop.

Every network reads the encoder's standardized numeric block and one hashed id per categorical field.
Training is mini-batch Adam with early stopping on validation log loss (the best epoch's weights are
kept). Saved as a JSON config plus a state dict, loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

import numpy as np
import torch
from torch import nn

from mlsd.core.progress import progress
from mlsd.training.encoding import EncodedBatch, FeatureEncoder
from mlsd.training.models.base import FitReport

Batch: TypeAlias = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # dense, categorical ids, labels


class _Logistic(nn.Module):
    offsets: torch.Tensor
    def __init__(self, n_numeric: int, n_fields: int, buckets: int) -> None:
        super().__init__()
        self.register_buffer("offsets", torch.arange(n_fields) * buckets)
        self.weights = nn.Embedding(max(n_fields, 1) * buckets, 1, sparse=True)
        nn.init.zeros_(self.weights.weight)
        self.linear = nn.Linear(n_numeric, 1)

    def forward(self, dense: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        out = self.linear(dense).squeeze(-1)
        if ids.shape[1]:
            out = out + self.weights(ids + self.offsets).sum(dim=(1, 2))
        return out  # type: ignore[no-any-return]


class _FFM(nn.Module):
    """Field-aware factorization machine; each numeric column is a field whose vector scales with its value."""

    offsets: torch.Tensor
    pairs: torch.Tensor

    def __init__(self, n_numeric: int, n_fields: int, buckets: int, k: int) -> None:
        super().__init__()
        self.n_fields = n_numeric + n_fields
        self.k = k
        self.linear = _Logistic(n_numeric, n_fields, buckets)
        self.register_buffer("offsets", torch.arange(n_fields) * buckets)
        self.cat_vectors = nn.Embedding(max(n_fields, 1) * buckets, self.n_fields * k, sparse=True)
        self.num_vectors = nn.Parameter(torch.empty(n_numeric, self.n_fields * k))
        nn.init.normal_(self.cat_vectors.weight, std=0.01)
        nn.init.normal_(self.num_vectors, std=0.01)
        rows, cols = torch.triu_indices(self.n_fields, self.n_fields, offset=1)
        self.register_buffer("pairs", torch.stack([rows, cols]))

    def forward(self, dense: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        numeric = dense.unsqueeze(-1) * self.num_vectors  # (batch, n_numeric, F*k)
        categorical = self.cat_vectors(ids + self.offsets)  # (batch, n_fields, F*k)
        v = torch.cat([numeric, categorical], dim=1).view(-1, self.n_fields, self.n_fields, self.k)
        i, j = self.pairs[0], self.pairs[1]
        # <v_{i, field j}, v_{j, field i}> for every pair i < j
        interactions = (v[:, i, j, :] * v[:, j, i, :]).sum(dim=(1, 2))
        return self.linear(dense, ids) + interactions  # type: ignore[no-any-return]


class _DCNv2(nn.Module):
    """Deep & Cross Network v2: full-rank cross layers and an MLP in parallel over [numeric, embeddings]."""

    offsets: torch.Tensor

    def __init__(self, n_numeric: int, n_fields: int, buckets: int, embedding_dim: int, cross_layers: int,
                 hidden: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        self.register_buffer("offsets", torch.arange(n_fields) * buckets)
        self.embeddings = nn.Embedding(max(n_fields, 1) * buckets, embedding_dim, sparse=True)
        nn.init.normal_(self.embeddings.weight, std=0.01)
        width = n_numeric + n_fields * embedding_dim
        self.cross = nn.ModuleList(nn.Linear(width, width) for _ in range(cross_layers))
        layers: list[nn.Module] = []
        previous = width
        for size in hidden:
            layers += [nn.Linear(previous, size), nn.ReLU(), nn.Dropout(dropout)]
            previous = size
        self.deep = nn.Sequential(*layers)
        self.head = nn.Linear(width + previous, 1)

    def forward(self, dense: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        x0 = torch.cat([dense, self.embeddings(ids + self.offsets).flatten(1)], dim=1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.head(torch.cat([x, self.deep(x0)], dim=1)).squeeze(-1)  # type: ignore[no-any-return]


class TorchClickModel:
    """Shared fit / predict / save for the PyTorch networks; subclasses build the network."""

    kind: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    default_learning_rate: ClassVar[float] = 2e-3

    def __init__(self, encoder: FeatureEncoder, seed: int = 0, epochs: int = 20, batch_size: int = 1024,
                 learning_rate: float | None = None, weight_decay: float = 1e-6, patience: int = 2,
                 **params: Any) -> None:
        self.encoder = encoder
        self.seed = seed
        self.epochs, self.batch_size, self.patience = epochs, batch_size, patience
        self.learning_rate = learning_rate if learning_rate is not None else self.default_learning_rate
        self.weight_decay = weight_decay
        self.network_params = {**self.defaults, **params}
        torch.manual_seed(seed)
        self.network = self.build()

    def build(self) -> nn.Module:
        raise NotImplementedError

    @staticmethod
    def _tensors(batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.ascontiguousarray(batch.dense)), torch.from_numpy(
            np.ascontiguousarray(batch.categorical))

    def fit(self, train: EncodedBatch, valid: EncodedBatch) -> FitReport:
        if train.labels is None:
            raise ValueError("training batch has no labels")
        dense, ids = self._tensors(train)
        labels = torch.from_numpy(train.labels.astype(np.float32))
        rng = np.random.default_rng(self.seed)

        def batches(epoch: int) -> Iterator[Batch]:
            order = torch.from_numpy(rng.permutation(len(train)))
            for start in range(0, len(train), self.batch_size):
                index = order[start:start + self.batch_size]
                yield dense[index], ids[index], labels[index]

        return self.train_epochs(batches, valid, rows=len(train))

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """Adam for dense parameters; SparseAdam for the embedding tables.

        Hashed embedding tables are large and each batch touches few rows: sparse gradients and
        SparseAdam update only those rows, which is what keeps CPU training fast.
        """
        sparse = [m.weight for m in self.network.modules() if isinstance(m, nn.Embedding)]
        sparse_ids = {id(p) for p in sparse}
        dense_params = [p for p in self.network.parameters() if id(p) not in sparse_ids and p.requires_grad]
        optimizers: list[torch.optim.Optimizer] = [
            torch.optim.Adam(dense_params, lr=self.learning_rate, weight_decay=self.weight_decay)]
        if sparse:
            optimizers.append(torch.optim.SparseAdam(sparse, lr=self.learning_rate))
        return optimizers

    def train_epochs(self, batches: Callable[[int], Iterable[Batch]], valid: EncodedBatch, *, rows: int,
                     forward: nn.Module | None = None) -> FitReport:
        """The training loop: epochs of ``batches(epoch)``, early stopping on ``valid``'s log loss.

        ``forward`` is the module the loss runs through (a data-parallel wrapper of ``self.network``
        under Ray Train; the network itself by default). The best epoch's weights are kept.
        """
        started = time.perf_counter()
        torch.manual_seed(self.seed)
        net = forward if forward is not None else self.network
        optimizers = self.optimizers()
        loss_fn = nn.BCEWithLogitsLoss()
        best, best_state, stale, history, epoch = float("inf"), None, 0, [], 0
        epochs = progress(range(1, self.epochs + 1), desc=f"{self.kind} epochs", unit="epoch")
        for epoch in epochs:
            net.train()
            for dense, ids, labels in batches(epoch):
                for optimizer in optimizers:
                    optimizer.zero_grad()
                loss = loss_fn(net(dense, ids), labels)
                loss.backward()
                for optimizer in optimizers:
                    optimizer.step()
            if not len(valid):  # a refit with a fixed epoch count keeps the last weights
                continue
            score = self._valid_loss(valid)
            history.append(score)
            if score < best - 1e-6:
                best, stale = score, 0
                best_state = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if best_state is not None:
            self.network.load_state_dict(best_state)
        return FitReport(rows, epoch, best, time.perf_counter() - started, history)

    def _valid_loss(self, valid: EncodedBatch) -> float:
        p = np.clip(self.predict(valid), 1e-7, 1 - 1e-7)
        y = valid.labels if valid.labels is not None else np.zeros(len(valid))
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    def predict(self, batch: EncodedBatch) -> np.ndarray:
        self.network.eval()
        dense, ids = self._tensors(batch)
        out = np.empty(len(batch), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(batch), 65536):
                out[start:start + 65536] = torch.sigmoid(
                    self.network(dense[start:start + 65536], ids[start:start + 65536])).numpy()
        return out

    def refit_params(self, report: FitReport) -> dict[str, Any]:
        """Parameters that train for exactly the early-stopped number of epochs."""
        best_epoch = int(np.argmin(report.history)) + 1 if report.history else self.epochs
        return {**self.params(), "epochs": best_epoch}

    def params(self) -> dict[str, Any]:
        return {"seed": self.seed, "epochs": self.epochs, "batch_size": self.batch_size,
                "learning_rate": self.learning_rate, "weight_decay": self.weight_decay, "patience": self.patience,
                **self.network_params}

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "params.json").write_text(json.dumps(self.params()))
        torch.save(self.network.state_dict(), directory / "state_dict.pt")

    @classmethod
    def load(cls, directory: Path, encoder: FeatureEncoder) -> TorchClickModel:
        params = json.loads((directory / "params.json").read_text())
        if "hidden" in params:
            params["hidden"] = tuple(params["hidden"])
        model = cls(encoder, **params)
        state = torch.load(directory / "state_dict.pt", weights_only=True, map_location="cpu")
        model.network.load_state_dict(state)
        model.network.eval()
        return model


class LogisticModel(TorchClickModel):
    """Logistic regression: a weight per hashed categorical value plus a linear numeric term (the baseline)."""

    kind: ClassVar[str] = "logreg"
    default_learning_rate: ClassVar[float] = 2e-2

    def build(self) -> nn.Module:
        return _Logistic(len(self.encoder.numeric), len(self.encoder.categorical), self.encoder.buckets)


class FFMModel(TorchClickModel):
    """Field-aware factorization machine (Juan et al. 2016)."""

    kind: ClassVar[str] = "ffm"
    defaults: ClassVar[dict[str, Any]] = {"k": 4}

    def build(self) -> nn.Module:
        return _FFM(len(self.encoder.numeric), len(self.encoder.categorical), self.encoder.buckets,
                    int(self.network_params["k"]))


class DCNv2Model(TorchClickModel):
    """DCN-v2 (Wang et al. 2021), parallel structure."""

    kind: ClassVar[str] = "dcn_v2"
    defaults: ClassVar[dict[str, Any]] = {"embedding_dim": 8, "cross_layers": 2, "hidden": (128, 64),
                                          "dropout": 0.1}

    def build(self) -> nn.Module:
        p = self.network_params
        return _DCNv2(len(self.encoder.numeric), len(self.encoder.categorical), self.encoder.buckets,
                      int(p["embedding_dim"]), int(p["cross_layers"]), tuple(p["hidden"]), float(p["dropout"]))
