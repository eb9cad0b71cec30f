"""Loaders for the flat CTR benchmarks: Criteo Display Advertising and the iPinYou FNN sample.

Each returns a :class:`CtrData`: feature columns, labels and train/validation/test row indices in the
files' own order (both are time-ordered logs without timestamps). They are flat tables: every feature
is already in the row, so there is nothing to join.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlsd.datasets.registry import locate


@dataclass
class CtrData:
    name: str
    columns: dict[str, np.ndarray]
    labels: np.ndarray
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


CRITEO_NUMERIC = tuple(f"I{i}" for i in range(1, 14))
CRITEO_CATEGORICAL = tuple(f"C{i}" for i in range(1, 27))


def load_criteo(root: str | os.PathLike[str] | None = None) -> CtrData:
    """Criteo sample: train.tsv / dev.tsv / test.tsv (label, 13 integers, 26 hashed categories; no header)."""
    files = locate("criteo", root)
    names = ["label", *CRITEO_NUMERIC, *CRITEO_CATEGORICAL]
    parts = [pd.read_csv(files[f], sep="\t", header=None, names=names,
                         dtype={c: "string" for c in CRITEO_CATEGORICAL})
             for f in ("train.tsv", "dev.tsv", "test.tsv")]
    frame = pd.concat(parts, ignore_index=True)
    sizes = np.cumsum([len(p) for p in parts])
    columns = {c: frame[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in CRITEO_NUMERIC}
    columns |= {c: frame[c].fillna("").to_numpy(dtype=str) for c in CRITEO_CATEGORICAL}
    index = np.arange(len(frame))
    return CtrData("criteo", columns, frame["label"].to_numpy(np.float32), CRITEO_NUMERIC, CRITEO_CATEGORICAL,
                   index[:sizes[0]], index[sizes[0]:sizes[1]], index[sizes[1]:])


def load_ipinyou(root: str | os.PathLike[str] | None = None, valid_share: float = 0.2) -> CtrData:
    """iPinYou sample (libsvm-style one-hot indices); ``featindex.fm.txt`` maps each index to its field.

    The last ``valid_share`` of the training file is the validation period.
    """
    files = locate("ipinyou", root)
    field_of: dict[int, str] = {}
    for line in files["featindex.fm.txt"].read_text().splitlines():
        name, _, number = line.rpartition("\t")
        field_name = name.split(":", 1)[0]
        # A few values hold a stray tab or line break; their lines carry no usable index.
        if number.isdigit() and field_name.isidentifier() and field_name != "truncate":
            field_of[int(number)] = field_name
    fields = sorted(set(field_of.values()))
    rows: list[dict[str, int]] = []
    labels: list[int] = []
    sizes = []
    for name in ("train.fm.txt", "test.fm.txt"):
        for line in files[name].read_text().splitlines():
            parts = line.split()
            labels.append(int(parts[0]))
            row: dict[str, int] = {}
            for token in parts[1:]:
                feature = int(token.split(":", 1)[0])
                row[field_of.get(feature, "unknown")] = feature
            rows.append(row)
        sizes.append(len(rows))
    columns = {f: np.array([r.get(f, -1) for r in rows], dtype=np.int64) for f in fields}
    n_train = sizes[0]
    cut = int(n_train * (1 - valid_share))
    index = np.arange(len(rows))
    return CtrData("ipinyou", columns, np.asarray(labels, np.float32), (), tuple(fields),
                   index[:cut], index[cut:n_train], index[n_train:])
