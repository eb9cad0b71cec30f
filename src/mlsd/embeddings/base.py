"""The encoder protocol and the batching loop every encoder shares."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mlsd.core.progress import progress as bar


@runtime_checkable
class Encoder(Protocol):
    """Inputs -> a ``(n, dim)`` float32 matrix; the same call in batch (training, indexing) and per request."""

    name: str
    dim: int

    @property
    def version(self) -> str:
        """Name plus a digest of the weights: two encoders with one version give the same vectors."""
        ...

    def encode(self, inputs: Sequence[Any], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """One float32 row of width ``dim`` per input, in input order (``(0, dim)`` for no input)."""
        ...


def encode_batches(inputs: Sequence[Any], dim: int, batch: Callable[[Sequence[Any]], np.ndarray], *,
                   batch_size: int, progress: bool, desc: str) -> np.ndarray:
    """Run ``batch`` over slices of ``inputs`` (a progress bar when asked) into one float32 matrix."""
    out = np.empty((len(inputs), dim), np.float32)
    starts = range(0, len(inputs), batch_size)
    for start in (bar(starts, desc=desc, unit="batch") if progress else starts):
        out[start:start + batch_size] = batch(inputs[start:start + batch_size])
    return out
