"""Negative downsampling and calibration back to true click rates.

Training on all negatives of a 0.2% click log wastes time on easy rows, so negatives are kept with
probability ``w``. A model trained that way over-predicts; ``recalibrate`` maps its output back:
q = p / (p + (1 - p) / w) (He et al. 2014). Isotonic or Platt scaling fitted on an untouched
validation period can then correct what remains. Calibrators serialize to plain JSON.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

_EPS = 1e-7


def downsample_negatives(labels: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Indices of rows to keep: every positive, each negative with probability ``rate``."""
    if not 0 < rate <= 1:
        raise ValueError(f"negative sampling rate must be in (0, 1], got {rate}")
    y = np.asarray(labels)
    keep = (y == 1) | (np.random.default_rng(seed).random(y.size) < rate)
    return np.flatnonzero(keep)


def recalibrate(p: np.ndarray, rate: float) -> np.ndarray:
    """Undo negative downsampling at ``rate``: q = p / (p + (1 - p) / rate)."""
    q = np.asarray(p, dtype=np.float64)
    return q / (q + (1.0 - q) / rate)


class Calibrator(Protocol):
    """Maps scores to probabilities; fitted on held-out data, stored as JSON."""

    kind: str

    def fit(self, p: np.ndarray, y: np.ndarray) -> Calibrator: ...

    def transform(self, p: np.ndarray) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...


class IsotonicCalibrator:
    """Monotone step function by pool-adjacent-violators, interpolated linearly between block centres."""

    kind = "isotonic"

    def __init__(self, x: np.ndarray | None = None, y: np.ndarray | None = None) -> None:
        self.x = np.asarray(x if x is not None else [], dtype=np.float64)
        self.y = np.asarray(y if y is not None else [], dtype=np.float64)

    def fit(self, p: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        order = np.argsort(p, kind="mergesort")
        xs = np.asarray(p, dtype=np.float64)[order]
        ys = np.asarray(y, dtype=np.float64)[order]
        # Pool equal scores first so ties get one value.
        unique_x, start, counts = np.unique(xs, return_index=True, return_counts=True)
        sums = np.add.reduceat(ys, start)
        blocks_sum: list[float] = []
        blocks_n: list[float] = []
        blocks_x: list[float] = []
        for xv, s, n in zip(unique_x, sums, counts, strict=True):
            blocks_sum.append(float(s))
            blocks_n.append(float(n))
            blocks_x.append(float(xv) * n)
            while len(blocks_sum) > 1 and blocks_sum[-2] / blocks_n[-2] >= blocks_sum[-1] / blocks_n[-1]:
                s_last, n_last, x_last = blocks_sum.pop(), blocks_n.pop(), blocks_x.pop()
                blocks_sum[-1] += s_last
                blocks_n[-1] += n_last
                blocks_x[-1] += x_last
        n_arr = np.asarray(blocks_n)
        self.x = np.asarray(blocks_x) / n_arr
        self.y = np.clip(np.asarray(blocks_sum) / n_arr, _EPS, 1 - _EPS)
        return self

    def transform(self, p: np.ndarray) -> np.ndarray:
        if self.x.size == 0:
            raise ValueError("isotonic calibrator is not fitted")
        return np.interp(np.asarray(p, dtype=np.float64), self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "x": self.x.tolist(), "y": self.y.tolist()}


class PlattCalibrator:
    """Logistic regression on the score's logit: sigmoid(a * logit(p) + b), fitted by Newton's method."""

    kind = "platt"

    def __init__(self, a: float = 1.0, b: float = 0.0) -> None:
        self.a, self.b = a, b

    def fit(self, p: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        z = _logit(p)
        t = np.asarray(y, dtype=np.float64)
        a, b = 1.0, 0.0
        for _ in range(100):
            q = _sigmoid(a * z + b)
            w = np.maximum(q * (1 - q), 1e-12)
            grad = np.array([np.sum((q - t) * z), np.sum(q - t)])
            hess = np.array([[np.sum(w * z * z), np.sum(w * z)], [np.sum(w * z), np.sum(w)]]) + 1e-9 * np.eye(2)
            step = np.linalg.solve(hess, grad)
            a, b = a - step[0], b - step[1]
            if np.abs(step).max() < 1e-10:
                break
        self.a, self.b = float(a), float(b)
        return self

    def transform(self, p: np.ndarray) -> np.ndarray:
        return _sigmoid(self.a * _logit(p) + self.b)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "a": self.a, "b": self.b}


def calibrator_from_dict(data: dict[str, Any]) -> Calibrator:
    """Rebuild a calibrator saved by ``to_dict``."""
    if data["kind"] == "isotonic":
        return IsotonicCalibrator(np.asarray(data["x"]), np.asarray(data["y"]))
    if data["kind"] == "platt":
        return PlattCalibrator(float(data["a"]), float(data["b"]))
    raise ValueError(f"unknown calibrator kind {data['kind']!r}")


def make_calibrator(kind: str) -> Calibrator:
    """``isotonic`` or ``platt``."""
    if kind == "isotonic":
        return IsotonicCalibrator()
    if kind == "platt":
        return PlattCalibrator()
    raise ValueError(f"calibration must be 'isotonic', 'platt' or 'none', not {kind!r}")


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(q / (1 - q))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))
