"""Published train/test splits, reimplemented so results are comparable with the tables that used them.

:func:`stratified_split` is Microsoft Recommenders' ``python_stratified_split`` (the split behind
their MovieLens benchmark table): one uniform random number per rating, drawn in the order of the
release's file from a generator seeded with ``seed``; within each group of ``by`` (user or item)
the ratings are ordered by that number, and the first ``round(ratio x group size)`` go to training
(``round`` as NumPy rounds, half to even). Same data, seed and arguments: the same split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def stratified_split(frame: pd.DataFrame, ratio: float = 0.75, *, by: str = "user", seed: int = 42,
                     order: str | None = "file_row") -> np.ndarray:
    """The boolean training mask of ``frame``'s rows (the rest is the test set).

    ``order``: a column holding each row's position in the original file (its random number is drawn
    at that position; a subset of the file keeps the numbers the whole file would give it); None, or a
    column the frame lacks, draws in the frame's own order.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    n = len(frame)
    position = frame[order].to_numpy(np.int64) if order is not None and order in frame.columns else np.arange(n)
    # the legacy generator, as np.random.seed(seed) then np.random.rand(rows) draws
    draws = np.random.RandomState(seed).rand(int(position.max()) + 1 if n else 0)[position]
    groups = frame[by].to_numpy()
    ranked = np.lexsort((draws, groups))  # by group, then by the random number
    sorted_groups = groups[ranked]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes) + 1  # 1-based rank within the group
    keep = np.round(ratio * np.repeat(sizes, sizes))
    mask = np.zeros(n, bool)
    mask[ranked] = rank <= keep
    return mask
