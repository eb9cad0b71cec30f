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
        self._columns: dict[str, np.ndarray] = {}
        self._read_at = -np.inf
        self._lock = threading.Lock()
        self.refreshes = 0

    def columns(self, at_us: int | None = None) -> dict[str, np.ndarray]:
        """Every column, one value per key in ``keys`` order (NaN = missing), at most ``max_age_s`` old."""
        with self._lock:
            now = self._clock()
            if now - self._read_at > self.max_age_s:
                self._columns = self.store.online_features(self.view_names, {self.join_key: self.keys}, at_us=at_us)
                self._read_at = now
                self.refreshes += 1
            return self._columns

    def take(self, positions: np.ndarray, at_us: int | None = None) -> dict[str, np.ndarray]:
        """Columns for ``positions`` into ``keys`` (any shape); a negative position gives NaN."""
        positions = np.asarray(positions, dtype=np.int64)
        missing = positions < 0
        out = {}
        for name, values in self.columns(at_us).items():
            taken = np.asarray(values, np.float64)[np.where(missing, 0, positions)]
            out[name] = np.where(missing, np.nan, taken)
        return out
