"""Metrics against scikit-learn and hand-computed cases; calibration against known probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from mlsd.evaluation import classification as m
from mlsd.evaluation.repeats import mean_sd
from mlsd.training.calibration import (
    IsotonicCalibrator,
    PlattCalibrator,
    calibrator_from_dict,
    downsample_negatives,
    recalibrate,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_and_loss_metrics_match_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(3000) < 0.1).astype(int)
    p = np.clip(rng.random(3000) * 0.5 + 0.3 * y, 0, 1)
    p[:300] = np.round(p[:300], 1)  # ties
    assert m.roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert m.pr_auc(y, p) == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)
    assert m.log_loss(y, p) == pytest.approx(skm.log_loss(y, p), rel=1e-9)


def test_normalized_entropy_and_calibration_by_hand() -> None:
    y = np.array([1, 0, 0, 0])
    p = np.array([0.5, 0.25, 0.25, 0.0])
    logloss = -(math.log(0.5) + 2 * math.log(0.75) + math.log(1 - 1e-15)) / 4
    background = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert m.normalized_entropy(y, p) == pytest.approx(logloss / background)
    assert m.normalized_entropy(y, np.full(4, 0.25)) == pytest.approx(1.0)
    assert m.calibration_ratio(y, p) == pytest.approx(0.25 / 0.25)
    # two uniform bins: [0.0, 0.25, 0.25] -> mean 1/6 vs rate 0, [0.5] -> 0.5 vs 1
    assert m.expected_calibration_error(y, p, bins=2) == pytest.approx((3 * (1 / 6) + 1 * 0.5) / 4)


def test_mean_sd_is_the_sample_sd_and_zero_for_one_run() -> None:
    values = [0.52, 0.55, 0.49, 0.58]
    mean, sd = mean_sd(iter(values))  # any iterable, read once
    assert mean == pytest.approx(np.mean(values))
    assert sd == pytest.approx(np.std(values, ddof=1))
    assert mean_sd([0.7]) == (0.7, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        mean_sd([])


def test_reliability_curve_bins_rows() -> None:
    y = np.array([0, 0, 1, 1])
    curve = m.reliability_curve(y, np.array([0.1, 0.2, 0.7, 0.9]), bins=2, strategy="uniform")
    assert curve.counts.tolist() == [2, 2]
    assert curve.observed.tolist() == [0.0, 1.0]
    assert curve.predicted.tolist() == pytest.approx([0.15, 0.8])


def test_recalibration_inverts_downsampling_exactly() -> None:
    p = np.linspace(0.001, 0.999, 50)
    for w in (0.01, 0.1, 0.5, 1.0):
        downsampled = p / (p + (1 - p) * w)  # the click rate among kept rows
        assert recalibrate(downsampled, w) == pytest.approx(p, rel=1e-12)


def test_downsampled_rates_recalibrate_to_known_truth() -> None:
    """Estimate click rates per segment from a downsampled log; recalibration recovers the true rates."""
    rng = np.random.default_rng(7)
    truth = np.array([0.002, 0.01, 0.05, 0.2])
    segment = rng.integers(0, 4, 2_000_000)
    clicks = (rng.random(segment.size) < truth[segment]).astype(int)
    kept = downsample_negatives(clicks, 0.05, seed=3)
    assert clicks[kept].sum() == clicks.sum()  # every positive is kept
    rate_in_sample = np.bincount(segment[kept], clicks[kept], 4) / np.bincount(segment[kept], minlength=4)
    recovered = recalibrate(rate_in_sample, 0.05)
    assert np.abs(recovered / truth - 1).max() < 0.1
    assert np.abs(rate_in_sample / truth - 1).min() > 0.5  # without recalibration it is badly off


@pytest.mark.parametrize("calibrator", [IsotonicCalibrator(), PlattCalibrator()])
def test_calibrators_fix_distorted_scores(calibrator: IsotonicCalibrator | PlattCalibrator) -> None:
    rng = np.random.default_rng(11)
    truth = rng.beta(1, 30, 200_000)
    y = (rng.random(truth.size) < truth).astype(int)
    score = np.sqrt(truth)  # monotone but far too high
    fitted = calibrator_from_dict(calibrator.fit(score[:100_000], y[:100_000]).to_dict())
    calibrated = fitted.transform(score[100_000:])
    assert m.calibration_ratio(y[100_000:], score[100_000:]) > 3
    assert m.calibration_ratio(y[100_000:], calibrated) == pytest.approx(1.0, abs=0.05)
    assert np.mean(np.abs(calibrated - truth[100_000:])) < 0.3 * np.mean(np.abs(score[100_000:] - truth[100_000:]))
    assert m.roc_auc(y[100_000:], calibrated) >= m.roc_auc(y[100_000:], score[100_000:]) - 0.002
