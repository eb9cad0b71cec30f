"""Visual search model: MobileNet features -> an ensemble of learned projections -> a FAISS index over the gallery.

Each projection (1024 -> hidden -> out, ReLU between, L2-normalized output) is learned on gallery
products' article types only, with one of two metric-learning losses: ``proxy`` (normalized softmax:
cosine similarity to one learned proxy per type, scaled; Zhai & Wu 2018) or ``supcon`` (supervised
contrastive, Khosla et al. 2020: batches of P types x K images, every other image of the anchor's
type a positive). Epochs stop early on validation precision@1 (validation queries from the gallery,
searched against the rest of it). ``members`` projections trained from different seeds are
concatenated (their cosines averaged): one projection's validation score moves by about a point from
epoch to epoch on ~7,800 images, and averaging members cancels part of that noise (with the raw
features, validation precision@1 0.914 for 5 members against 0.911 on average for one).
The served vector concatenates the normalized raw features and the ensemble, weighted
``sqrt(alpha)`` and ``sqrt(1 - alpha)`` (cosine = alpha x raw cosine + (1 - alpha) x projected
cosine), alpha chosen on validation: the projection sharpens article types, the raw features keep
what else makes two images alike. Serving runs it in NumPy (two matrix products per member), so the
service needs no torch; one query reads every member's 4 MB first layer, so the members' cost is
memory traffic, which stacking them into one product would not reduce. The gallery index is part
of the saved model: a new model version brings its own index, and the service swaps both at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mlsd.retrieval.ann import ExactIndex, VectorIndex, load_index

Progress = Callable[[str], None]


def l2(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12), np.float32)


@dataclass
class Projection:
    """Per member ``normalize(relu((x - mean) @ w1 + b1) @ w2 + b2)`` on L2-normalized input, the members
    concatenated and normalized, then concatenated with the input at weight ``alpha`` (see the module);
    identity when no weights."""

    mean: np.ndarray | None = None
    weights: list[np.ndarray] = field(default_factory=list)  # w1, b1, w2, b2 of each member in turn
    alpha: float = 0.0

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        x = l2(np.asarray(raw, np.float32))
        if not self.weights:
            return x
        assert self.mean is not None
        centred = x - self.mean
        projected = l2(np.hstack([l2(np.maximum(centred @ w1 + b1, 0.0) @ w2 + b2)
                                  for w1, b1, w2, b2 in self.members()]))
        if self.alpha <= 0:
            return projected
        return np.hstack([np.sqrt(self.alpha) * x, np.sqrt(1 - self.alpha) * projected]).astype(np.float32)

    def with_alpha(self, alpha: float) -> Projection:
        return Projection(self.mean, self.weights, alpha)

    def members(self) -> list[list[np.ndarray]]:
        return [self.weights[i:i + 4] for i in range(0, len(self.weights), 4)]

    @property
    def dim(self) -> int:
        return sum(int(w2.shape[1]) for _, _, w2, _ in self.members())


@dataclass(frozen=True)
class TrainSettings:
    loss: str = "proxy"  # or "supcon"
    hidden: int = 1024
    out: int = 256
    dropout: float = 0.2
    scale: float = 16.0  # proxy: the cosine logits' scale
    temperature: float = 0.1  # supcon
    types_per_batch: int = 64
    per_type: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 40
    steps_per_epoch: int = 30
    patience: int = 8
    seed: int = 0
    members: int = 5  # projections in the ensemble; member i trains with seed ``seed * members + i``


def _batch(rng: np.random.Generator, by_type: list[np.ndarray], settings: TrainSettings) -> np.ndarray:
    types = rng.choice(len(by_type), min(settings.types_per_batch, len(by_type)), replace=False)
    return np.concatenate([rng.choice(by_type[t], settings.per_type, replace=len(by_type[t]) < settings.per_type)
                           for t in types])


def train_projection(features: np.ndarray, labels: np.ndarray, valid_score: Callable[[Projection], float],
                     settings: TrainSettings, say: Progress) -> tuple[Projection, dict[str, Any]]:
    """SupCon on ``features`` (gallery rows) with ``labels``; the best epoch by ``valid_score``."""
    import torch

    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    x_all = l2(features)
    mean = x_all.mean(axis=0)
    x = torch.from_numpy(x_all - mean)
    codes = np.unique(labels, return_inverse=True)[1]
    by_type = [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]
    by_type = [rows for rows in by_type if len(rows) >= 2]  # a type with one image has no positive
    y = torch.from_numpy(codes)
    net = torch.nn.Sequential(torch.nn.Dropout(settings.dropout), torch.nn.Linear(x.shape[1], settings.hidden),
                              torch.nn.ReLU(), torch.nn.Linear(settings.hidden, settings.out))
    proxies = torch.nn.Parameter(torch.randn(int(codes.max()) + 1, settings.out) * 0.01)
    optimizer = torch.optim.AdamW([*net.parameters(), proxies], lr=settings.lr, weight_decay=settings.weight_decay)
    functional = torch.nn.functional

    def snapshot() -> Projection:
        w = [p.detach().numpy().astype(np.float32) for p in net.parameters()]
        return Projection(mean, [w[0].T.copy(), w[1], w[2].T.copy(), w[3]])

    def supcon(rows: Any) -> Any:
        z = functional.normalize(net(x[rows]), dim=1)
        logits = z @ z.T / settings.temperature
        eye = torch.eye(len(rows), dtype=torch.bool)
        logits = logits.masked_fill(eye, -1e9)
        positive = (y[rows][:, None] == y[rows][None, :]) & ~eye
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        has = positive.any(dim=1)
        return -((log_prob * positive).sum(dim=1)[has] / positive.sum(dim=1)[has]).mean()

    def proxy(rows: Any) -> Any:
        z = functional.normalize(net(x[rows]), dim=1)
        return functional.cross_entropy(settings.scale * z @ functional.normalize(proxies, dim=1).T, y[rows])

    best_score, best, waited, history = -1.0, snapshot(), 0, []
    for epoch in range(settings.epochs):
        net.train()
        for _ in range(settings.steps_per_epoch):
            if settings.loss == "supcon":
                loss = supcon(torch.from_numpy(_batch(rng, by_type, settings)))
            else:
                loss = proxy(torch.from_numpy(rng.choice(len(x), settings.types_per_batch * settings.per_type)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        candidate = snapshot()
        score = valid_score(candidate)
        history.append({"epoch": epoch + 1, "valid_precision@1": score, "loss": float(loss.detach())})
        if score > best_score:
            best_score, best, waited = score, candidate, 0
        else:
            waited += 1
            if waited >= settings.patience:
                break
    say(f"  projection: best validation precision@1 {best_score:.4f} after {len(history)} epochs")
    return best, {"epochs": len(history), "best_valid_precision@1": best_score, "history": history,
                  "settings": settings.__dict__}


def train_ensemble(features: np.ndarray, labels: np.ndarray, valid_score: Callable[[Projection], float],
                   settings: TrainSettings, say: Progress) -> tuple[Projection, dict[str, Any]]:
    """``settings.members`` projections (:func:`train_projection`, each stopped on its own validation score),
    concatenated into one :class:`Projection`."""
    members, logs = [], []
    for i in range(settings.members):
        member, log = train_projection(features, labels, valid_score,
                                       replace(settings, seed=settings.seed * settings.members + i), say)
        members.append(member)
        logs.append({k: v for k, v in log.items() if k != "settings"})
    ensemble = Projection(members[0].mean, [w for member in members for w in member.weights])
    best = valid_score(ensemble)
    say(f"  ensemble of {settings.members}: validation precision@1 {best:.4f}")
    return ensemble, {"members": logs, "epochs": [log["epochs"] for log in logs], "best_valid_precision@1": best,
                      "settings": settings.__dict__}


def search_labels(query: np.ndarray, gallery: np.ndarray, k: int, exclude_self: bool = False) -> np.ndarray:
    """Rows of ``gallery`` nearest each query (inner product of normalized vectors), best first."""
    index = ExactIndex(gallery.shape[1])
    index.add(gallery)
    _, ids = index.search(query, k + 1 if exclude_self else k)
    return ids[:, 1:] if exclude_self else ids


@dataclass
class VisualSearchModel:
    """The served unit: encoder version, projection, the gallery's index and the gallery's products."""

    family: str
    encoder_version: str
    projection: Projection
    index: VectorIndex
    product_ids: np.ndarray
    article_type: list[str]
    colour: list[str]
    names: list[str]
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, family: str, encoder_version: str, projection: Projection, raw_gallery: np.ndarray,
              product_ids: np.ndarray, article_type: list[str], colour: list[str], names: list[str],
              params: dict[str, Any]) -> VisualSearchModel:
        vectors = projection(raw_gallery)
        index = ExactIndex(vectors.shape[1])
        index.add(vectors)
        return cls(family, encoder_version, projection, index, product_ids, article_type, colour, names, params)

    def search(self, raw: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and gallery rows of the ``k`` nearest products for each raw MobileNet vector."""
        return self.index.search(self.projection(raw), k)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"family": self.family, "encoder_version": self.encoder_version, "params": self.params,
                "article_type": self.article_type, "colour": self.colour, "names": self.names,
                "projected": bool(self.projection.weights), "members": len(self.projection.members()),
                "alpha": self.projection.alpha}
        (directory / "visual.json").write_text(json.dumps(meta, ensure_ascii=False))
        np.save(directory / "product_ids.npy", self.product_ids)
        if self.projection.weights:
            assert self.projection.mean is not None
            arrays = {"mean": self.projection.mean, **{f"p{i}": w for i, w in enumerate(self.projection.weights)}}
            np.savez(directory / "projection.npz", **arrays)  # type: ignore[arg-type]
        self.index.save(directory / "gallery.faiss")

    @classmethod
    def load(cls, directory: Path) -> VisualSearchModel:
        meta = json.loads((directory / "visual.json").read_text())
        projection = Projection()
        if meta["projected"]:
            with np.load(directory / "projection.npz") as arrays:
                # models saved before "members" was in the metadata: four arrays per member
                count = 4 * meta["members"] if "members" in meta else sum(1 for k in arrays.files if k.startswith("p"))
                projection = Projection(arrays["mean"], [arrays[f"p{i}"] for i in range(count)], meta["alpha"])
        return cls(meta["family"], meta["encoder_version"], projection, load_index(directory / "gallery.faiss"),
                   np.load(directory / "product_ids.npy"), meta["article_type"], meta["colour"], meta["names"],
                   meta["params"])
