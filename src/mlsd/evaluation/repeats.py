"""Summaries of one metric over repeated runs: training seeds, split seeds, fine-tuning seeds.

Every "mean ± sd over N seeds" in a system's table comes from :func:`mean_sd`, so they all mean the
same thing: the sample standard deviation (ddof=1), which is 0 for a single run rather than NaN.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) of ``values``; sd 0 for one value."""
    array = np.fromiter(values, np.float64)
    if array.size == 0:
        raise ValueError("mean_sd needs at least one value")
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0
