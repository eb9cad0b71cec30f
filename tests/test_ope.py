"""Off-policy estimators on a simulated bandit with a known answer, and on the Open Bandit Dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mlsd.cli import main
from mlsd.evaluation.ope import LoggedBandit, bootstrap_interval, doubly_robust, ips, snips


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


def test_bootstrap_interval_covers_the_truth_most_of_the_time() -> None:
    covered = 0
    for seed in range(20):
        data, truth = simulated(3_000, seed=seed, q_noise=0.01)
        low, high = bootstrap_interval(data, snips, resamples=200, seed=seed)
        covered += low <= truth <= high
    assert covered >= 16  # nominal 95%: 19 of 20 expected, 16 allows for chance


def test_zero_logging_probability_is_rejected() -> None:
    with pytest.raises(ValueError, match="> 0"):
        LoggedBandit(np.ones(2), np.array([0.5, 0.0]), np.ones(2), np.ones(2), np.ones(2))


@pytest.mark.data
@pytest.mark.skipif(not os.environ.get("MLSD_DATA_DIR"), reason="MLSD_DATA_DIR not set")
def test_open_bandit_estimates_bracket_the_logged_truth(tmp_path: Path) -> None:
    out = tmp_path / "ope.json"
    assert main(["ope", "--json", str(out), "--resamples", "300"]) == 0
    results = json.loads(out.read_text())
    assert set(results) == {"men", "women"}
    for campaign in results.values():
        assert set(campaign["relative_error"]) == {"ips", "snips", "dr"}
        for name in ("ips", "snips", "dr"):
            low, high = campaign["ci95"][name]
            assert low < campaign[name] < high
            assert low <= campaign["truth"] <= high  # about 50 clicks per file: wide, but it must hold
