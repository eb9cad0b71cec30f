"""The encoder contract kit (as scikit-learn's ``check_estimator``): what every :class:`Encoder` promises."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlsd.embeddings.base import Encoder


def _require(condition: object, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def check_encoder(encoder: Encoder, samples: Sequence[Any], *, atol: float = 1e-5) -> None:
    """Shape, dtype, finiteness, determinism, batch == one by one, empty input, a named version.

    ``samples``: at least two distinct inputs of the encoder's kind. Raises AssertionError naming the
    broken promise.
    """
    _require(isinstance(encoder, Encoder), f"{encoder!r} does not implement the Encoder protocol")
    _require(isinstance(encoder.dim, int) and encoder.dim > 0, f"{encoder.name}: dim must be a positive int")
    _require(isinstance(encoder.version, str) and encoder.name in encoder.version,
             f"{encoder.name}: version {encoder.version!r} must name the encoder")
    _require(len(samples) >= 2, "check_encoder needs at least two samples")
    batch = encoder.encode(samples, batch_size=len(samples))
    _require(batch.shape == (len(samples), encoder.dim), f"{encoder.name}: shape {batch.shape}")
    _require(batch.dtype == np.float32, f"{encoder.name}: dtype {batch.dtype}, not float32")
    _require(np.isfinite(batch).all(), f"{encoder.name}: non-finite values")
    again = encoder.encode(samples, batch_size=1)
    _require(np.allclose(batch, again, atol=atol), f"{encoder.name}: a batch differs from one-by-one encoding")
    _require(np.allclose(batch, encoder.encode(samples, batch_size=len(samples)), atol=atol),
             f"{encoder.name}: two encodings of the same inputs differ")
    _require(not np.allclose(batch[0], batch[1], atol=atol), f"{encoder.name}: distinct inputs, equal vectors")
    empty = encoder.encode([], batch_size=8)
    _require(empty.shape == (0, encoder.dim), f"{encoder.name}: no input gives {empty.shape}")
