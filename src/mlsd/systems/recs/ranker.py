"""The recs ranker: LambdaMART over each user's candidates, promoted only on cross-validated evidence."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlsd.core.progress import progress
from mlsd.evaluation.significance import paired_bootstrap_mean
from mlsd.evaluation.topk import ndcg_per_user
from mlsd.systems.recs.pipeline import RANKING_FEATURES, FeatureLookup, Recommender, Users
from mlsd.training.engine import FitEngine
from mlsd.training.models.lambdamart import LambdaMART


def train_ranker(recommender: Recommender, users: Users, lookup: FeatureLookup, positives: list[np.ndarray],
                 seed: int = 0, folds: int = 5, stopping_share: float = 0.2, engine: FitEngine | None = None
                 ) -> tuple[LambdaMART, dict[str, Any], dict[str, np.ndarray]]:
    """LambdaMART over each user's rankable candidates: relevant if the held-back ratings contain it.

    The other candidates are the negatives (hard ones: every source proposed them). Promotion is
    cross-validated over users, since one held-out slice of a small label window is a few dozen users:
    the users with a positive are split into ``folds``; each fold is ranked by a model trained on the
    others (early-stopped on ``stopping_share`` of them, never on the fold itself), and the ranker is
    promoted when the one-sided 95% paired-bootstrap bound of the per-user nDCG@10 gain over the
    co-visitation order it starts from is above 0. The served ranker is then fitted on every user,
    for the median number of trees the folds stopped at. Also returns each evaluated user's held-out
    nDCG@10 under the ranker and under the co-visitation order (the evidence promotion weighs).
    """
    cands = recommender.candidates(users)
    columns = recommender.ranking_columns(users, cands, lookup)
    width = cands.items.shape[1]
    labels = np.concatenate([np.isin(row, pos) & (row >= 0) for row, pos in zip(cands.items, positives,
                                                                                   strict=True)]).astype(np.float32)
    # The candidate order is a prior ranking; the ranker learns on the top of each user's list.
    keep = recommender.rankable(columns, width) & (cands.items >= 0)
    labelled = np.flatnonzero(labels.reshape(-1, width).max(1) > 0)
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(labelled)) % folds

    def rankable_rows(rows: np.ndarray) -> np.ndarray:
        """Flat (user, slot) indices of the rankable candidates of users ``rows`` (ascending)."""
        mask = np.zeros_like(keep)
        mask[rows] = keep[rows]
        return np.flatnonzero(mask.reshape(-1))

    def part(rows: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        flat = rankable_rows(rows)
        return {c: v[flat] for c, v in columns.items()}, labels[flat], keep[rows].sum(1)

    def fit(rows: np.ndarray) -> tuple[LambdaMART, dict[str, Any]]:
        stopping = rng.permutation(len(rows)) < max(1, round(stopping_share * len(rows)))
        model = LambdaMART(RANKING_FEATURES, seed=seed)
        return model, model.fit(*part(rows[~stopping]), valid=part(rows[stopping]), engine=engine)

    per_user: dict[str, list[np.ndarray]] = {"ranker": [], "co_visitation": []}
    trees = []
    for fold in progress(range(folds), desc="ranker folds", unit="fold"):
        evaluated = labelled[fold_of == fold]
        model, fold_report = fit(labelled[fold_of != fold])
        trees.append(fold_report["trees"])
        flat = rankable_rows(evaluated)
        scores = np.full(keep.size, -np.inf)  # as served: only the rankable candidates are scored
        scores[flat] = model.predict({c: columns[c][flat] for c in model.features})
        for name, values in (("ranker", scores), ("co_visitation", columns["covis_score"])):
            masked = np.where(keep, values.reshape(-1, width), -np.inf)[evaluated]
            top = np.take_along_axis(cands.items[evaluated], np.argsort(-masked, axis=1)[:, :10], 1)
            per_user[name].append(ndcg_per_user(top, [positives[u] for u in evaluated]))
    gains = {name: np.concatenate(values) for name, values in per_user.items()}
    _gain, (low, _high) = paired_bootstrap_mean(gains["ranker"] - gains["co_visitation"], level=0.9, seed=seed)
    ranker = LambdaMART(RANKING_FEATURES, seed=seed, rounds=max(1, int(np.median(trees))))
    report = ranker.fit(*part(labelled), engine=engine)
    report.pop("valid_ndcg@10", None)  # no early stopping here: the folds chose the size
    report.update({"candidate_recall": float(labels.sum() / max(sum(len(p) for p in positives), 1)),
                   "folds": folds, "fold_trees": trees, "evaluated_users": len(labelled),
                   "valid_ndcg@10_ranker": float(gains["ranker"].mean()),
                   "valid_ndcg@10_co_visitation": float(gains["co_visitation"].mean()),
                   "valid_gain_lower_bound": low, "promoted": bool(low > 0)})
    return ranker, report, gains
