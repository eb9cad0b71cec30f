"""Estimate the Bernoulli-Thompson-sampling policy's click rate from the uniform-random policy's logs.

The Open Bandit Dataset logged both policies side by side on ZOZOTOWN (same week, same campaign), so
the BTS policy's own logged click rate is the truth the estimates are checked against.

The evaluation policy's action probabilities change as its posterior updates. For each random-policy
impression at time t they are taken point-in-time from the BTS log, the latest logged probability
of each (item, position) before t, through the feature store's offline join. They are then
normalized over items per position. The reward model for DR is a Beta-smoothed click rate per
(item, position), cross-fitted on two halves of the random log.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlsd.core.timeutil import TIMESTAMP
from mlsd.datasets.registry import locate
from mlsd.evaluation.ope import LoggedBandit, evaluate_policy
from mlsd.features import Entity, Feature, FeatureView, OfflineStore, TableSource

CAMPAIGNS = ("men", "women")
SLOT = Entity("slot", ("item_id", "position"))


def _read(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, usecols=["timestamp", "item_id", "position", "click", "propensity_score"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def evaluation_probabilities(random: pd.DataFrame, bts: pd.DataFrame, items: int, workdir: Path) -> np.ndarray:
    """``(rows, items)``: the BTS policy's probability of each item at each random row's position and time."""
    source = workdir / "bts_propensity.parquet"
    pa.parquet.write_table(pa.table({
        "item_id": pa.array(bts["item_id"].to_numpy(np.int64)),
        "position": pa.array(bts["position"].to_numpy(np.int64)),
        "event_timestamp": pa.array(bts["timestamp"].dt.tz_convert(None).to_numpy("datetime64[us]")).cast(TIMESTAMP),
        "propensity_score": pa.array(bts["propensity_score"].to_numpy(np.float64))}), source)
    view = FeatureView("bts_policy", (SLOT,), TableSource(str(source)), (Feature("propensity_score"),))
    n = len(random)
    stamps = random["timestamp"].dt.tz_convert(None).to_numpy("datetime64[us]")
    labels = pa.table({
        "row": pa.array(np.repeat(np.arange(n), items)),
        "item_id": pa.array(np.tile(np.arange(items), n)),
        "position": pa.array(np.repeat(random["position"].to_numpy(np.int64), items)),
        "event_timestamp": pa.array(np.repeat(stamps, items)).cast(TIMESTAMP),
    })
    frame = OfflineStore().to_table(labels, [view]).sort_by([("row", "ascending"), ("item_id", "ascending")])
    probabilities = frame.column("bts_policy__propensity_score").to_numpy(zero_copy_only=False).astype(np.float64)
    probabilities = probabilities.reshape(n, items)
    # Before an (item, position) first appears in the BTS log its probability is unknown: use the
    # item's mean over the log for that position (the policy is known to the evaluator, not its clicks).
    means = bts.groupby(["position", "item_id"])["propensity_score"].mean()
    missing = np.isnan(probabilities)
    if missing.any():
        rows, cols = np.nonzero(missing)
        positions = random["position"].to_numpy(np.int64)
        fallback = [means.get((int(positions[r]), int(c)), 0.0) for r, c in zip(rows, cols, strict=True)]
        probabilities[rows, cols] = fallback
    return np.asarray(probabilities / probabilities.sum(axis=1, keepdims=True))


def reward_model(random: pd.DataFrame, items: int, seed: int = 0) -> np.ndarray:
    """``(rows, items)``: cross-fitted Beta-smoothed click rate of each item at the row's position."""
    rng = np.random.default_rng(seed)
    fold = rng.integers(0, 2, len(random))
    position = random["position"].to_numpy()
    out = np.empty((len(random), items))
    for k in (0, 1):
        train = random[fold != k]
        prior_rate = train["click"].mean()
        strength = 100.0  # pseudo-impressions of the prior per (item, position)
        table = np.full((4, items), prior_rate)
        stats = train.groupby(["position", "item_id"])["click"].agg(["sum", "count"])
        for (pos, item), row in stats.iterrows():
            table[int(pos), int(item)] = (row["sum"] + strength * prior_rate) / (row["count"] + strength)
        rows = np.flatnonzero(fold == k)
        out[rows] = table[position[rows]]
    return out


def estimate_campaign(data_dir: str | os.PathLike[str] | None, campaign: str, *, resamples: int = 1000,
                      seed: int = 0) -> dict[str, Any]:
    """IPS, SNIPS and DR estimates of BTS's click rate from random logs, with intervals and the truth."""
    files = locate("open_bandit", data_dir)
    random, bts = _read(files[f"random_{campaign}.csv"]), _read(files[f"bts_{campaign}.csv"])
    items = int(max(random["item_id"].max(), bts["item_id"].max())) + 1
    with tempfile.TemporaryDirectory() as scratch:
        p_eval_all = evaluation_probabilities(random, bts, items, Path(scratch))
    q_all = reward_model(random, items, seed)
    logged = random["item_id"].to_numpy()
    rows = np.arange(len(random))
    data = LoggedBandit(reward=random["click"].to_numpy(np.float64),
                        p_logging=random["propensity_score"].to_numpy(np.float64),
                        p_evaluation=p_eval_all[rows, logged], q_logged=q_all[rows, logged],
                        q_policy=(p_eval_all * q_all).sum(axis=1))
    result = evaluate_policy(data, truth=float(bts["click"].mean()), resamples=resamples, seed=seed)
    result["logged_rows"] = len(random)
    result["logging_policy_rate"] = float(random["click"].mean())
    return result


def run_ope(data_dir: str | os.PathLike[str] | None, *, resamples: int = 1000) -> dict[str, dict[str, Any]]:
    return {campaign: estimate_campaign(data_dir, campaign, resamples=resamples) for campaign in CAMPAIGNS}
