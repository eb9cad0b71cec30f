"""Fitting and choosing the harmful-content models: every choice on the validation part, none on test.

Each family's regularization is chosen by validation macro PR-AUC; the blend's weight likewise; each
model's calibration and decision thresholds are fit on validation (t_hate maximizes validation hate
F1, then t_offensive maximizes validation offensive F1 under it). The table reports every model on
the test part with bootstrap intervals; the served model is the best by validation macro F1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlsd.evaluation.classification import expected_calibration_error
from mlsd.evaluation.multiclass import class_report, f1_intervals, f1_of
from mlsd.systems.harmful.data import CLASSES, HATE, OFFENSIVE, Posts, Split
from mlsd.systems.harmful.finetune import macro_ap
from mlsd.systems.harmful.model import Decision, HarmfulClassifier, LinearHead, Tfidf

Progress = Callable[[str], None]
TFIDF_C = (1.0, 3.0, 10.0)
HEAD_C = (0.3, 1.0, 3.0, 10.0)
BLEND_WEIGHTS = tuple(np.round(np.linspace(0.1, 0.9, 9), 2))


@dataclass
class Fitted:
    """A model with its validation and test probabilities (calibrated) and what was chosen for it."""

    model: HarmfulClassifier
    valid: np.ndarray
    test: np.ndarray
    selection: dict[str, Any] = field(default_factory=dict)


def fit_decision(raw_valid: np.ndarray, y: np.ndarray) -> Decision:
    """Matrix-scaling calibration, then the two thresholds, all on validation."""
    calibration = LinearHead.fit(np.log(np.clip(raw_valid, 1e-7, 1.0)), y, c=10.0)
    decision = Decision(calibration)
    proba = decision.calibrate(raw_valid)
    grid = np.unique(np.round(np.quantile(proba[:, HATE], np.linspace(0.5, 0.999, 120)), 4))

    def f1_for(t_hate: float, t_off: float, j: int) -> float:
        decision.t_hate, decision.t_offensive = t_hate, t_off
        return float(f1_of(y, decision.classes(proba), len(CLASSES))[0][j])

    decision.t_hate = float(max(grid, key=lambda t: f1_for(t, 0.5, HATE)))
    decision.t_offensive = float(max(np.round(np.linspace(0.2, 0.8, 61), 3),
                                     key=lambda t: f1_for(decision.t_hate, t, OFFENSIVE)))
    return decision


def _finish(model: HarmfulClassifier, raw_valid: np.ndarray, raw_test: np.ndarray, y_valid: np.ndarray,
            selection: dict[str, Any]) -> Fitted:
    model.decision = fit_decision(raw_valid, y_valid)
    selection = {**selection, **model.decision.to_dict()}
    return Fitted(model, model.decision.calibrate(raw_valid), model.decision.calibrate(raw_test), selection)


def fit_tfidf(posts: Posts, split: Split, say: Progress, grid: Sequence[float] = TFIDF_C) -> Fitted:
    texts = posts.texts
    tfidf = Tfidf.fit([texts[i] for i in split.train])
    x_train, x_valid, x_test = (tfidf.transform([texts[i] for i in rows]) for rows in (split.train, split.valid,
                                                                                      split.test))
    y_train, y_valid = posts.labels[split.train], posts.labels[split.valid]
    scored = []
    for c in grid:
        head = LinearHead.fit(x_train, y_train, c)
        scored.append((macro_ap(y_valid, head.proba(x_valid)), c, head))
    score, c, head = max(scored, key=lambda s: s[0])
    say(f"  tfidf_lr: C={c} (validation macro PR-AUC {score:.4f})")
    model = HarmfulClassifier("tfidf_lr", Decision(), tfidf=tfidf, tfidf_head=head, params={"C": c})
    return _finish(model, head.proba(x_valid), head.proba(x_test), y_valid,
                   {"C": c, "valid_macro_pr_auc": score, "grid": list(grid)})


def fit_head(posts: Posts, split: Split, embeddings: np.ndarray, encoder_version: str, say: Progress,
             grid: Sequence[float] = HEAD_C) -> Fitted:
    y_train, y_valid = posts.labels[split.train], posts.labels[split.valid]
    scored = []
    for c in grid:
        head = LinearHead.fit(embeddings[split.train], y_train, c)
        scored.append((macro_ap(y_valid, head.proba(embeddings[split.valid])), c, head))
    score, c, head = max(scored, key=lambda s: s[0])
    say(f"  minilm_head: C={c} (validation macro PR-AUC {score:.4f})")
    model = HarmfulClassifier("minilm_head", Decision(), embedding_head=head, encoder_version=encoder_version,
                              params={"C": c})
    return _finish(model, head.proba(embeddings[split.valid]), head.proba(embeddings[split.test]), y_valid,
                   {"C": c, "valid_macro_pr_auc": score, "grid": list(grid)})


def blend(lexical: Fitted, semantic: Fitted, posts: Posts, split: Split, say: Progress,
          raw: dict[str, tuple[np.ndarray, np.ndarray]]) -> Fitted:
    """A TF-IDF model and an embedding model averaged; the weight chosen on validation macro PR-AUC.

    ``raw``: each family's uncalibrated (validation, test) probabilities.
    """
    y_valid = posts.labels[split.valid]
    (lv, lt), (sv, st) = raw[lexical.model.family], raw[semantic.model.family]
    score, w = max((macro_ap(y_valid, w * sv + (1 - w) * lv), float(w)) for w in BLEND_WEIGHTS)
    name = f"blend_{semantic.model.family}"
    say(f"  {name}: weight {w} on {semantic.model.family} (validation macro PR-AUC {score:.4f})")
    model = HarmfulClassifier(name, Decision(), tfidf=lexical.model.tfidf, tfidf_head=lexical.model.tfidf_head,
                              embedding_head=semantic.model.embedding_head, encoder_dir=semantic.model.encoder_dir,
                              encoder_version=semantic.model.encoder_version, blend_weight=w,
                              params={"weight": w, "lexical": lexical.selection.get("C"),
                                      "semantic": semantic.model.family})
    return _finish(model, w * sv + (1 - w) * lv, w * st + (1 - w) * lt, y_valid,
                   {"weight": w, "valid_macro_pr_auc": score, "grid": list(BLEND_WEIGHTS)})


def evaluate(fitted: Fitted, posts: Posts, split: Split) -> dict[str, Any]:
    """The test part's report (per class, macro / weighted F1, confusion), intervals and validation F1."""
    y_test, y_valid = posts.labels[split.test], posts.labels[split.valid]
    decision = fitted.model.decision
    predicted = decision.classes(fitted.test)
    report = class_report(y_test, predicted, fitted.test, CLASSES)
    report["ci95"] = f1_intervals(y_test, predicted, CLASSES)
    report["ece"] = {c: expected_calibration_error((y_test == j).astype(np.float64), fitted.test[:, j])
                     for j, c in enumerate(CLASSES)}
    _, valid_macro, valid_weighted = f1_of(y_valid, decision.classes(fitted.valid), len(CLASSES))
    report["valid"] = {"macro_f1": valid_macro, "weighted_f1": valid_weighted}
    report["selection"] = fitted.selection
    return report
