"""Estimate the Bernoulli-Thompson-sampling policy's click rate from the uniform-random policy's logs.

The Open Bandit Dataset logged both policies side by side on ZOZOTOWN (same week, same campaign), so
the BTS policy's own logged click rate is the truth the estimates are checked against; its interval
(bootstrap over the BTS log's impressions) is reported beside theirs.

The evaluation policy's action distribution is BTS's own, as its authors evaluate it: obp's
``BernoulliTS`` with the ZOZOTOWN prior of the campaign, its probability of putting each item at each
of the three positions estimated by ``compute_batch_action_dist`` (Monte Carlo over the posterior;
each position's column sums to 1). The logged per-row propensities of the BTS log are not that
distribution: they drift as the deployed posterior updated, and the latest one per item summed to
0.9-3.4 over items before normalisation. The reward model for DR is a Beta-smoothed click rate per
(item, position), cross-fitted on two halves of the random log.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any

import numpy as np
import pandas as pd

from mlsd.datasets.registry import locate
from mlsd.evaluation.ope import LoggedBandit, evaluate_policy

CAMPAIGNS = ("men", "women")
POSITIONS = 3  # items shown per impression (ZOZOTOWN's len_list)
SIMULATIONS = 100_000  # posterior draws behind the action distribution (obp's examples use 100,000)
BTS_SEED = 12345  # obp's examples' random_state


def _read(path: os.PathLike[str] | str) -> pd.DataFrame:
    frame = pd.read_csv(path, usecols=["timestamp", "item_id", "position", "click", "propensity_score"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["position"] -= 1  # the CSV counts positions from 1; obp's action distribution from 0
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def bts_action_distribution(campaign: str, items: int, *, simulations: int = SIMULATIONS,
                            seed: int = BTS_SEED) -> np.ndarray:
    """``(items, positions)``: obp's BernoulliTS (ZOZOTOWN prior) probability of each item at each position."""
    from obp.policy import BernoulliTS

    policy = BernoulliTS(n_actions=items, len_list=POSITIONS, is_zozotown_prior=True, campaign=campaign,
                         random_state=seed)
    with contextlib.redirect_stderr(io.StringIO()):  # obp's own progress bar
        distribution = policy.compute_batch_action_dist(n_sim=simulations, n_rounds=1)[0]
    return np.asarray(distribution, dtype=np.float64)


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
    distribution = bts_action_distribution(campaign, items)
    p_eval_all = distribution[:, random["position"].to_numpy()].T  # (rows, items) at each row's position
    q_all = reward_model(random, items, seed)
    logged = random["item_id"].to_numpy()
    rows = np.arange(len(random))
    data = LoggedBandit(reward=random["click"].to_numpy(np.float64),
                        p_logging=random["propensity_score"].to_numpy(np.float64),
                        p_evaluation=p_eval_all[rows, logged], q_logged=q_all[rows, logged],
                        q_policy=(p_eval_all * q_all).sum(axis=1))
    # The on-policy truth is a sample too (the BTS log's clicks): its interval, beside the estimates'.
    result = evaluate_policy(data, truth_rewards=bts["click"].to_numpy(np.float64), resamples=resamples, seed=seed)
    result["policy"] = {"name": "BernoulliTS", "prior": f"zozotown/{campaign}", "simulations": SIMULATIONS,
                        "seed": BTS_SEED}
    result["logged_rows"] = len(random)
    result["logging_policy_rate"] = float(random["click"].mean())
    return result


def run_ope(data_dir: str | os.PathLike[str] | None, *, resamples: int = 1000) -> dict[str, dict[str, Any]]:
    return {campaign: estimate_campaign(data_dir, campaign, resamples=resamples) for campaign in CAMPAIGNS}


def format_estimates(results: dict[str, dict[str, Any]]) -> str:
    """The table `mlsd ope` prints: per campaign the on-policy truth, then each estimate and its gap to it."""
    lines = []
    for campaign, r in results.items():
        low, high = r["truth_ci95"]
        lines.append(f"{campaign:6s} on-policy truth {r['truth']:.5f} [{low:.5f}, {high:.5f}]  ({r['logged_rows']:,} "
                     f"random rows, {r['policy']['name']} with the {r['policy']['prior']} prior)")
        for name in ("ips", "snips", "dr"):
            (low, high), (d_low, d_high) = r["ci95"][name], r["difference_ci95"][name]
            lines.append(f"       {name:5s} {r[name]:.5f} [{low:.5f}, {high:.5f}]  minus truth "
                         f"[{d_low:+.5f}, {d_high:+.5f}]  relative error {r['relative_error'][name]:.1%}")
    return "\n".join(lines)


def ope_command(data_dir: str | os.PathLike[str] | None, *, resamples: int) -> tuple[dict[str, dict[str, Any]], str]:
    """``mlsd ope`` (registered under the ``mlsd.plugins.commands`` entry points): estimates and their table."""
    results = run_ope(data_dir, resamples=resamples)
    return results, format_estimates(results)
