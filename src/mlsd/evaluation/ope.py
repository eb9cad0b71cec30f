"""Off-policy evaluation: estimate a new policy's reward from logs of another policy.

Each logged row has the reward ``r``, the logging policy's probability ``p_b`` of the action it took
and the evaluation policy's probability ``p_e`` of that same action. With importance weights
``w = p_e / p_b``:

- IPS: mean(w r), unbiased when ``p_b`` is right and never zero where ``p_e`` is not;
- SNIPS: sum(w r) / sum(w), a little biased, much less variance;
- DR: mean(E_{a~pi_e}[q(x, a)] + w (r - q(x, a_logged))), unbiased if either the weights or the
  reward model ``q`` are right.

Intervals come from the nonparametric bootstrap over logged rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LoggedBandit:
    """Logged rows: reward, logging and evaluation probabilities of the logged action, reward-model terms."""

    reward: np.ndarray
    p_logging: np.ndarray
    p_evaluation: np.ndarray
    q_logged: np.ndarray  # reward model at the logged action
    q_policy: np.ndarray  # reward model averaged over the evaluation policy's actions

    def __post_init__(self) -> None:
        n = self.reward.shape[0]
        for name in ("p_logging", "p_evaluation", "q_logged", "q_policy"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"{name} has {getattr(self, name).shape[0]} rows, reward has {n}")
        if (self.p_logging <= 0).any():
            raise ValueError("logging probabilities must be > 0 for every logged row")

    @property
    def weights(self) -> np.ndarray:
        return np.asarray(self.p_evaluation / self.p_logging)

    def take(self, index: np.ndarray) -> LoggedBandit:
        return LoggedBandit(self.reward[index], self.p_logging[index], self.p_evaluation[index],
                            self.q_logged[index], self.q_policy[index])


def ips(data: LoggedBandit) -> float:
    return float(np.mean(data.weights * data.reward))


def snips(data: LoggedBandit) -> float:
    w = data.weights
    return float(np.sum(w * data.reward) / np.sum(w))


def doubly_robust(data: LoggedBandit) -> float:
    return float(np.mean(data.q_policy + data.weights * (data.reward - data.q_logged)))


ESTIMATORS: dict[str, Callable[[LoggedBandit], float]] = {"ips": ips, "snips": snips, "dr": doubly_robust}


def bootstrap_values(data: LoggedBandit, estimator: Callable[[LoggedBandit], float], *, resamples: int = 1000,
                     seed: int = 0) -> np.ndarray:
    """An estimator on ``resamples`` bootstrap resamples of the logged rows."""
    rng = np.random.default_rng(seed)
    n = data.reward.shape[0]
    return np.array([estimator(data.take(np.asarray(rng.integers(0, n, n)))) for _ in range(resamples)])


def bootstrap_interval(data: LoggedBandit, estimator: Callable[[LoggedBandit], float], *, resamples: int = 1000,
                       level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of an estimator over logged rows."""
    return percentile_interval(bootstrap_values(data, estimator, resamples=resamples, seed=seed), level)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` range of bootstrap values."""
    tail = (1 - level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def evaluate_policy(data: LoggedBandit, truth: float | None = None, *, truth_rewards: np.ndarray | None = None,
                    resamples: int = 1000, seed: int = 0) -> dict[str, object]:
    """Every estimator with its bootstrap interval and, given the true value, relative errors.

    ``truth_rewards``: the evaluation policy's own on-policy rewards, when the truth is itself a
    sample; their mean is the truth, with its interval, and each estimate's difference from it gets
    an interval from the two independent bootstraps (0 inside: the estimate is consistent with it).
    """
    result: dict[str, object] = {name: fn(data) for name, fn in ESTIMATORS.items()}
    draws = {name: bootstrap_values(data, fn, resamples=resamples, seed=seed) for name, fn in ESTIMATORS.items()}
    result["ci95"] = {name: list(percentile_interval(values)) for name, values in draws.items()}
    if truth_rewards is not None:
        rewards = np.asarray(truth_rewards, dtype=np.float64)
        truth = float(rewards.mean())
        rng = np.random.default_rng(seed + 1)
        truth_draws = rewards[rng.integers(0, rewards.size, (resamples, rewards.size))].mean(axis=1)
        result["truth_ci95"] = list(percentile_interval(truth_draws))
        result["difference_ci95"] = {name: list(percentile_interval(values - truth_draws))
                                     for name, values in draws.items()}
    if truth is not None:
        result["truth"] = truth
        result["relative_error"] = {name: abs(float(result[name]) - truth) / truth  # type: ignore[arg-type]
                                    for name in ESTIMATORS}
    return result
