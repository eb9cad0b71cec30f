"""Turns feature columns into model inputs, the same way for training frames and online requests.

A :class:`FeatureEncoder` knows which columns are numeric and which categorical. Categorical values
(ints or strings) are hashed per field into a fixed number of buckets, so unseen values need no
vocabulary update and training and serving agree by construction. Numeric columns keep NaN for tree
models; neural models get a signed log transform standardized with training-set statistics.
Everything the encoder learned is JSON.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

_MIX = np.uint64(0x9E3779B97F4A7C15)


def _splitmix(values: np.ndarray) -> np.ndarray:
    """A fast, well-mixed 64-bit hash of uint64 values (splitmix64 finalizer)."""
    z = values + _MIX
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _as_uint64(values: np.ndarray | list[Any]) -> np.ndarray:
    """Integers as their two's complement; anything else through a stable 8-byte digest of its text."""
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        return array.astype(np.int64).view(np.uint64)
    if array.dtype.kind == "f":
        nan = np.isnan(array)
        out = np.where(nan, 0, array).astype(np.int64).view(np.uint64)
        out[nan] = np.uint64(0xFFFFFFFFFFFFFFFF)
        return out
    uniques, inverse = np.unique(array.astype(str), return_inverse=True)
    digests = np.array([int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8).digest(), "little")
                        for u in uniques.tolist()], dtype=np.uint64)
    return digests[inverse]


@functools.lru_cache(maxsize=1024)
def _salt(field_index: int) -> np.uint64:
    return np.uint64(_splitmix(np.array([field_index + 1], dtype=np.uint64))[0])


def hash_bucket(values: np.ndarray | list[Any], field_index: int, buckets: int) -> np.ndarray:
    """Bucket in ``[0, buckets)`` for each value of one categorical field (the field salts the hash)."""
    salted = _as_uint64(values) ^ _salt(field_index)
    return (_splitmix(salted) % np.uint64(buckets)).astype(np.int64)


class EncodedBatch:
    """Model input: raw numeric (NaN = missing), hashed categorical, optional labels, and ``dense``.

    ``dense`` (signed-log, standardized, NaN -> 0) is what neural models read; it is computed on first
    use, so tree models on the serving path never pay for it.
    """

    def __init__(self, numeric: np.ndarray, categorical: np.ndarray, labels: np.ndarray | None = None, *,
                 scale: tuple[np.ndarray, np.ndarray] | None = None, dense: np.ndarray | None = None) -> None:
        self.numeric, self.categorical, self.labels = numeric, categorical, labels
        self._scale = scale
        self._dense = dense

    @property
    def dense(self) -> np.ndarray:
        if self._dense is None:
            if self._scale is None:
                raise ValueError("batch has no standardization to build dense inputs from")
            mean, std = self._scale
            self._dense = np.nan_to_num((_signed_log(self.numeric) - mean) / std).astype(np.float32)
        return self._dense

    def __len__(self) -> int:
        return int(self.categorical.shape[0])

    def take(self, index: np.ndarray) -> EncodedBatch:
        return EncodedBatch(self.numeric[index], self.categorical[index],
                            None if self.labels is None else self.labels[index], scale=self._scale,
                            dense=None if self._dense is None else self._dense[index])


Columns = Mapping[str, np.ndarray | list[Any] | pa.Array | pa.ChunkedArray]


@dataclass
class FeatureEncoder:
    """Numeric + hashed categorical encoding; ``fit`` learns only the numeric standardization."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    buckets: int = 1 << 14
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def fit(self, columns: Columns) -> FeatureEncoder:
        if not self.numeric:
            self.mean, self.std = [], []
            return self
        raw = self._numeric(columns)
        logged = _signed_log(raw)
        self.mean = np.nan_to_num(np.nanmean(logged, axis=0) if len(raw) else np.zeros(raw.shape[1])).tolist()
        std = np.nanstd(logged, axis=0) if len(raw) else np.ones(raw.shape[1])
        self.std = np.where(np.nan_to_num(std) > 1e-9, np.nan_to_num(std), 1.0).tolist()
        return self

    def transform(self, columns: Columns, labels: np.ndarray | None = None) -> EncodedBatch:
        if not self.mean and self.numeric:
            raise ValueError("encoder is not fitted: call fit() on training columns first")
        raw = self._numeric(columns)
        n = raw.shape[0]
        categorical = np.empty((n, len(self.categorical)), dtype=np.int64)
        for j, name in enumerate(self.categorical):
            categorical[:, j] = hash_bucket(column_array(columns, name), j, self.buckets)
        y = None if labels is None else np.asarray(labels, dtype=np.float32)
        return EncodedBatch(raw, categorical, y, scale=(np.asarray(self.mean), np.asarray(self.std)))

    def _numeric(self, columns: Columns) -> np.ndarray:
        if not self.numeric:
            first = column_array(columns, self.categorical[0]) if self.categorical else np.zeros(0)
            return np.zeros((len(first), 0), dtype=np.float32)
        # One (features, rows) array then a transposed copy: a single allocation, cheap for 1-row requests.
        stacked = np.array([column_array(columns, c) for c in self.numeric], dtype=np.float64)
        return np.ascontiguousarray(stacked.T, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical), "buckets": self.buckets,
                "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureEncoder:
        return cls(tuple(data["numeric"]), tuple(data["categorical"]), int(data["buckets"]),
                   list(data["mean"]), list(data["std"]))


def column_array(columns: Columns, name: str) -> np.ndarray:
    """One column as a numpy array, whether it was given as numpy, a list or Arrow."""
    try:
        values = columns[name]
    except KeyError:
        raise KeyError(f"feature column {name!r} is missing") from None
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return np.asarray(values.to_numpy(zero_copy_only=False))
    return np.asarray(values)


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.sign(x) * np.log1p(np.abs(x)))
