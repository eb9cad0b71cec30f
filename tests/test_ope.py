"""Off-policy estimators on a simulated bandit with a known answer, and on the Open Bandit Dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mlsd.cli import main
from mlsd.evaluation.ope import ESTIMATORS, LoggedBandit, bootstrap_interval, doubly_robust, evaluate_policy, ips, snips
from mlsd.systems.bandit.open_bandit import bts_action_distribution


def simulated(n: int, seed: int, q_noise: float, scale: float = 1.0) -> tuple[LoggedBandit, float]:
    """Uniform logging over 5 actions with context-dependent click rates; a greedy-ish evaluation policy."""
    rng = np.random.default_rng(seed)
    context = rng.integers(0, 3, n)
    rates = scale * np.array([[0.01, 0.02, 0.05, 0.03, 0.01], [0.04, 0.01, 0.01, 0.02, 0.06],
                              [0.02, 0.03, 0.02, 0.08, 0.01]])
    policy = np.array([[0.1, 0.1, 0.6, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.6], [0.1, 0.1, 0.1, 0.6, 0.1]])
    action = rng.integers(0, 5, n)
    reward = (rng.random(n) < rates[context, action]).astype(float)
    q = np.clip(rates + rng.normal(0, q_noise, rates.shape), 0, 1)
    truth = float(np.mean((policy * rates).sum(axis=1)[context]))
    data = LoggedBandit(reward, np.full(n, 0.2), policy[context, action], q[context, action],
                        (policy * q).sum(axis=1)[context])
    return data, truth


def test_estimators_are_close_to_the_truth_and_dr_helps() -> None:
    data, truth = simulated(400_000, seed=1, q_noise=0.0)
    for estimate in (ips(data), snips(data), doubly_robust(data)):
        assert estimate == pytest.approx(truth, rel=0.03)
    # With an exact reward model DR removes the variance of the importance weights over actions; the
    # reward's own Bernoulli noise stays, so the gain shows where rewards are not rare.
    errors: dict[str, list[float]] = {"ips": [], "dr": []}
    for seed in range(20):
        small, small_truth = simulated(5_000, seed=seed + 10, q_noise=0.0, scale=10.0)
        errors["ips"].append(ips(small) - small_truth)
        errors["dr"].append(doubly_robust(small) - small_truth)
    assert np.sqrt(np.mean(np.square(errors["dr"]))) < 0.75 * np.sqrt(np.mean(np.square(errors["ips"])))


def test_estimators_are_unbiased_and_their_intervals_cover_on_a_simulated_bandit() -> None:
    """The truth is exact here: bias over 40 logs of 3,000 rows, and the share of intervals that hold it."""
    errors: dict[str, list[float]] = {name: [] for name in ESTIMATORS}
    covered = dict.fromkeys(ESTIMATORS, 0)
    for seed in range(40):
        data, truth = simulated(3_000, seed=seed, q_noise=0.01)
        for name, estimator in ESTIMATORS.items():
            errors[name].append(estimator(data) - truth)
            low, high = bootstrap_interval(data, estimator, resamples=200, seed=seed)
            covered[name] += low <= truth <= high
    for name in ESTIMATORS:
        error = np.asarray(errors[name])
        assert abs(error.mean()) < 3 * error.std() / np.sqrt(error.size), name  # no bias beyond chance
        assert covered[name] >= 34, (name, covered[name])  # nominal 95%: 38 of 40 expected


def test_evaluation_policy_is_obps_bernoulli_ts_with_the_zozotown_prior() -> None:
    distribution = bts_action_distribution("men", 34, simulations=20_000)
    assert distribution.shape == (34, 3)
    np.testing.assert_allclose(distribution.sum(axis=0), 1.0)  # one item at each position
    np.testing.assert_allclose(distribution.sum(axis=1).sum(), 3.0)
    assert distribution.max() > 5 / 34  # the prior favours some items: not the uniform policy
    np.testing.assert_array_equal(distribution, bts_action_distribution("men", 34, simulations=20_000))


def test_difference_from_a_sampled_truth_has_an_interval() -> None:
    data, truth = simulated(20_000, seed=3, q_noise=0.0)
    on_policy = (np.random.default_rng(4).random(20_000) < truth).astype(float)
    result = evaluate_policy(data, truth_rewards=on_policy, resamples=300)
    assert result["truth"] == pytest.approx(on_policy.mean())
    for name in ESTIMATORS:
        low, high = result["difference_ci95"][name]  # type: ignore[index]
        assert low < 0 < high
    shifted = evaluate_policy(data, truth_rewards=np.ones(1000), resamples=300)
    assert shifted["difference_ci95"]["snips"][1] < 0  # type: ignore[index]


def test_zero_logging_probability_is_rejected() -> None:
    with pytest.raises(ValueError, match="> 0"):
        LoggedBandit(np.ones(2), np.array([0.5, 0.0]), np.ones(2), np.ones(2), np.ones(2))


@pytest.mark.data
@pytest.mark.skipif(not os.environ.get("MLSD_DATA_DIR"), reason="MLSD_DATA_DIR not set")
def test_open_bandit_estimates_agree_with_the_logged_truth(tmp_path: Path) -> None:
    out = tmp_path / "ope.json"
    assert main(["ope", "--json", str(out), "--resamples", "300"]) == 0
    results = json.loads(out.read_text())
    assert set(results) == {"men", "women"}
    for label, campaign in results.items():
        assert set(campaign["relative_error"]) == {"ips", "snips", "dr"}
        low, high = campaign["truth_ci95"]
        assert low < campaign["truth"] < high
        assert campaign["policy"] == {"name": "BernoulliTS", "prior": f"zozotown/{label}",
                                      "simulations": 100_000, "seed": 12345}
        for name in ("ips", "snips", "dr"):
            low, high = campaign["ci95"][name]
            assert low < campaign[name] < high
            # about 50 clicks per file on each side: wide, but the estimate must be consistent with the truth
            low, high = campaign["difference_ci95"][name]
            assert low < 0 < high
