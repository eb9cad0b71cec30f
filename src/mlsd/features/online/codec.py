"""Packing of one entity's feature values into one blob: int64 event time, then float64 per feature.

The fixed layout lets a batch read decode with a single ``numpy.frombuffer`` over the joined blobs.
Missing values are NaN; integers above 2**53 lose precision (ids belong in keys, not in values).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MISSING_TS = np.iinfo(np.int64).min


class VectorCodec:
    """Encodes rows of ``n_features`` float64 values (plus their event time) to bytes and back."""

    def __init__(self, n_features: int) -> None:
        self.n_features = n_features
        self.width = 8 * (n_features + 1)
        self._missing = np.full(n_features + 1, np.nan).tobytes()
        self._missing = np.int64(MISSING_TS).tobytes() + self._missing[8:]

    def encode_rows(self, event_ts_us: np.ndarray, values: np.ndarray) -> list[bytes]:
        """One blob per row of ``values`` (shape ``(n, n_features)``)."""
        matrix = np.empty((len(values), self.n_features + 1), dtype=np.float64)
        matrix[:, 1:] = values
        matrix.view(np.int64)[:, 0] = event_ts_us
        raw = matrix.tobytes()
        w = self.width
        return [raw[i * w : (i + 1) * w] for i in range(len(values))]

    def decode(self, blobs: Sequence[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
        """Event times (``MISSING_TS`` where absent) and a ``(n, n_features)`` float64 matrix (NaN where absent)."""
        joined = b"".join(self._missing if b is None else b for b in blobs)
        matrix = np.frombuffer(joined, dtype=np.float64).reshape(len(blobs), self.n_features + 1)
        return matrix.view(np.int64)[:, 0], matrix[:, 1:]
