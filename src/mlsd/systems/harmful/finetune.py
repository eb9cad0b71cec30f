"""Fine-tuning all-MiniLM-L6-v2 end to end on CPU, with early stopping on validation.

The sentence-transformers model itself is trained (transformer, mean pooling, normalization), so the
fine-tuned encoder's ``encode`` gives exactly the vectors the head was trained on. The head starts
from the logistic regression fit on the frozen embeddings; the loss is cross-entropy against the
annotators' vote shares (soft targets), weighted per class against the imbalance. Every
``eval_every`` steps the validation part is scored (macro PR-AUC, threshold-free and class-balanced);
the best state is kept and training stops after ``patience`` evaluations without a gain or after
``epochs`` epochs (PyTorch 2.13 CPU, ``torch.set_num_threads`` of the machine).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd.evaluation.classification import pr_auc
from mlsd.systems.harmful.model import LinearHead


@dataclass(frozen=True)
class FinetuneSettings:
    epochs: int = 2
    batch_size: int = 32
    lr: float = 4e-5
    head_lr: float = 1e-3
    max_length: int = 64
    eval_every: int = 200
    patience: int = 4
    class_weights: tuple[float, float, float] = (3.0, 1.0, 1.0)
    seed: int = 0


def macro_ap(y: np.ndarray, proba: np.ndarray) -> float:
    return float(np.mean([pr_auc((y == j).astype(np.float64), proba[:, j]) for j in range(proba.shape[1])]))


def finetune(encoder: Any, head: LinearHead, train_texts: Sequence[str], train_targets: np.ndarray,
             valid_texts: Sequence[str], valid_y: np.ndarray, settings: FinetuneSettings,
             say: Callable[[str], None]) -> tuple[LinearHead, dict[str, Any]]:
    """Train ``encoder`` (a MiniLMEncoder, changed in place) and ``head``; returns the best head and the history."""
    import torch

    torch.manual_seed(settings.seed)
    model = encoder.model
    model.max_seq_length = settings.max_length
    linear = torch.nn.Linear(head.coef.shape[1], head.coef.shape[0])
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(head.coef.astype(np.float32)))
        linear.bias.copy_(torch.from_numpy(head.intercept.astype(np.float32)))
    optimizer = torch.optim.AdamW([{"params": model.parameters(), "lr": settings.lr},
                                   {"params": linear.parameters(), "lr": settings.head_lr}], weight_decay=0.01)
    weights = torch.tensor(settings.class_weights, dtype=torch.float32)
    targets = torch.from_numpy(train_targets.astype(np.float32))
    texts = list(train_texts)

    def valid_proba() -> np.ndarray:
        model.eval()
        vectors = encoder.encode(valid_texts, batch_size=128)
        model.train()
        return LinearHead(linear.weight.detach().numpy().astype(np.float64),
                          linear.bias.detach().numpy().astype(np.float64)).proba(vectors)

    best_score = macro_ap(valid_y, valid_proba())
    best = (copy.deepcopy(model.state_dict()), copy.deepcopy(linear.state_dict()))
    history: list[dict[str, float]] = [{"step": 0, "valid_macro_pr_auc": best_score}]
    rng = np.random.default_rng(settings.seed)
    step, waited, started, stopped = 0, 0, time.perf_counter(), False
    model.train()
    for epoch in range(settings.epochs):
        order = rng.permutation(len(texts))
        for start in range(0, len(order), settings.batch_size):
            rows = order[start:start + settings.batch_size]
            features = model.tokenize([texts[i] for i in rows])
            embedding = model(features)["sentence_embedding"]
            log_p = torch.log_softmax(linear(embedding), dim=-1)
            loss = -(targets[rows] * log_p * weights).sum(dim=1).mean()
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            step += 1
            if step % settings.eval_every == 0:
                score = macro_ap(valid_y, valid_proba())
                history.append({"step": step, "epoch": epoch, "valid_macro_pr_auc": score,
                                "seconds": round(time.perf_counter() - started, 1)})
                say(f"    fine-tuning step {step} (epoch {epoch + 1}): validation macro PR-AUC {score:.4f}")
                if score > best_score:
                    best_score, waited = score, 0
                    best = (copy.deepcopy(model.state_dict()), copy.deepcopy(linear.state_dict()))
                else:
                    waited += 1
                    if waited >= settings.patience:
                        stopped = True
                        break
        if stopped:
            break
    model.load_state_dict(best[0])
    linear.load_state_dict(best[1])
    model.eval()
    encoder.__dict__.pop("version", None)  # the weights changed
    tuned = LinearHead(linear.weight.detach().numpy().astype(np.float64),
                       linear.bias.detach().numpy().astype(np.float64))
    return tuned, {"steps": step, "best_valid_macro_pr_auc": best_score, "early_stopped": stopped,
                   "history": history, "seconds": round(time.perf_counter() - started, 1),
                   "texts_per_s": round(step * settings.batch_size / max(time.perf_counter() - started, 1e-9), 1)}
