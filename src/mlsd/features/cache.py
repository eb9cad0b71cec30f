"""A read-through cache of online feature columns for a fixed set of entities (e.g. a whole catalogue).

Ranking reads the same few thousand items' features on every request; reading hundreds of rows from
the online store per request costs more than the rest of the request together. The cache reads all
the entities' columns in one batch and serves rows from memory, re-reading when the copy is older than
``max_age_s``: values are at most that stale, on top of the stream processor's own freshness. Views
whose values depend on the read time (TTL, time-since) are evaluated at the refresh's ``at_us``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from mlsd.features.store import FeatureStore


class OnlineFeatureCache:
    """Online columns ``view__feature`` of ``keys`` (one join key), re-read at most every ``max_age_s``."""

    def __init__(self, store: FeatureStore, view_names: Sequence[str], join_key: str, keys: Sequence[object], *,
                 max_age_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if max_age_s < 0:
            raise ValueError(f"max_age_s must be >= 0, got {max_age_s}")
        self.store, self.view_names, self.join_key = store, list(view_names), join_key
        self.keys, self.max_age_s, self._clock = list(keys), max_age_s, clock
        self._names: list[str] = []
        self._matrix = np.zeros((0, len(self.keys) + 1))  # (columns, keys + a NaN slot for missing positions)
        self._read_at = -np.inf
        self._lock = threading.Lock()
        self.refreshes = 0

    def _fresh(self, at_us: int | None) -> tuple[list[str], np.ndarray]:
        with self._lock:
            now = self._clock()
            if now - self._read_at > self.max_age_s:
                columns = self.store.online_features(self.view_names, {self.join_key: self.keys}, at_us=at_us)
                matrix = np.full((len(columns), len(self.keys) + 1), np.nan)
                for row, values in enumerate(columns.values()):
                    matrix[row, :-1] = values
                self._names, self._matrix, self._read_at = list(columns), matrix, now
                self.refreshes += 1
            return self._names, self._matrix

    def columns(self, at_us: int | None = None) -> dict[str, np.ndarray]:
        """Every column as floats, one value per key in ``keys`` order (NaN = missing), at most ``max_age_s`` old."""
        names, matrix = self._fresh(at_us)
        return dict(zip(names, matrix[:, :-1], strict=True))

    def take(self, positions: np.ndarray, at_us: int | None = None) -> dict[str, np.ndarray]:
        """Float columns for ``positions`` into ``keys`` (any shape); a negative position gives NaN."""
        names, matrix = self._fresh(at_us)
        positions = np.asarray(positions, dtype=np.int64)
        taken = matrix[:, np.where(positions < 0, len(self.keys), positions)]  # one gather for every column
        return dict(zip(names, taken, strict=True))
