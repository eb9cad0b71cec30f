"""Training/serving skew check: recompute logged feature vectors offline and count mismatches.

For a sample of feature-log records, the entities and request time of each served row become label
rows for the point-in-time store; the offline values must equal what the service used. Any
difference means the online path (stream, materialization, request-time code) disagrees with the
definition training used.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from mlsd.core.records import FeatureLogRecord
from mlsd.core.timeutil import TIMESTAMP
from mlsd.features.store import LABEL_TS, FeatureStore


@dataclass
class SkewReport:
    """Rows and cells compared, mismatching cells overall and per feature."""

    records: int
    rows: int
    cells: int
    mismatches: int
    by_feature: dict[str, int] = field(default_factory=dict)

    @property
    def mismatch_rate(self) -> float:
        return self.mismatches / self.cells if self.cells else 0.0


def skew_check(records: Iterable[FeatureLogRecord], store: FeatureStore, view_names: Sequence[str], *,
               sample: int | None = 200, seed: int = 0, rtol: float = 1e-9) -> SkewReport:
    """Compare up to ``sample`` logged records with the offline store's values at their request times."""
    chosen = list(records)
    if sample is not None and len(chosen) > sample:
        chosen = random.Random(seed).sample(chosen, sample)
    if not chosen:
        return SkewReport(0, 0, 0, 0)
    columns: dict[str, list[Any]] = {}
    stamps: list[int] = []
    logged: dict[str, list[float]] = {}
    for record in chosen:
        n = len(record.predictions)
        for key, values in record.entities.items():
            columns.setdefault(key, []).extend(values)
        for key, value in record.request.items():
            columns.setdefault(key, []).extend(value if isinstance(value, list) else [value] * n)
        stamps.extend([record.at_us] * n)
        for name, values in record.features.items():
            logged.setdefault(name, []).extend(np.nan if v is None else v for v in values)
    rows = len(stamps)
    labels = pa.table({**{k: pa.array(v) for k, v in columns.items()}, "__row": pa.array(np.arange(rows)),
                       LABEL_TS: pa.array(stamps, pa.int64()).cast(TIMESTAMP)})
    offline = store.offline.to_table(labels, [store.view(v) for v in view_names]).sort_by("__row")
    by_feature: dict[str, int] = {}
    cells = 0
    for name, values in logged.items():
        if name not in offline.column_names:
            continue  # not a view feature (raw ids): nothing to recompute
        expected = offline.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        served = np.asarray(values, dtype=np.float64)
        bad = int((~np.isclose(served, expected, rtol=rtol, atol=0.0, equal_nan=True)).sum())
        cells += rows
        if bad:
            by_feature[name] = bad
    return SkewReport(len(chosen), rows, cells, sum(by_feature.values()), by_feature)
