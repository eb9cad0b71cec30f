"""LETOR 4.0 MQ2008: query-document judgments as events, and the five rotating folds.

Each line of ``S1.txt`` .. ``S5.txt`` is ``label qid:Q 1:v .. 46:v #docid = D ...``. A judgment is
an event ``(query_id, doc_id, part, label, f1..f46, ts)``; LETOR has no times, so a judgment's event
time is the collection's (2008-01-01 plus its part's index in seconds, one instant per part), and
labels are read as of a later time. Fold ``f`` trains on parts f..f+2, validates on f+3 and tests on
f+4 (mod 5): fold 1 = train S1-S3, validate S4, test S5, as LETOR publishes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from mlsd.core.errors import MlsdError
from mlsd.datasets import locate
from mlsd.events import EventSchema

FEATURES = tuple(f"f{i}" for i in range(1, 47))
PARTS = (1, 2, 3, 4, 5)
COLLECTED_S = 1_199_145_600  # 2008-01-01T00:00:00Z
JUDGMENT_SCHEMA = EventSchema(
    "judgment", {"query_id": pa.int64(), "doc_id": pa.string(), "part": pa.int64(), "label": pa.int64(),
                 **{f: pa.float64() for f in FEATURES}, "ts": pa.int64()}, timestamp_field="ts")


@dataclass(frozen=True)
class Fold:
    """One of the five folds: the parts it trains, validates and tests on."""

    number: int

    @property
    def parts(self) -> tuple[tuple[int, ...], int, int]:
        order = [PARTS[(self.number - 1 + j) % 5] for j in range(5)]
        return tuple(order[:3]), order[3], order[4]


FOLDS = tuple(Fold(n) for n in PARTS)


def parse_letor(path: Path, part: int) -> pa.Table:
    """One LETOR file as judgment events (rows keep the file's order: the official evaluation's tie order)."""
    labels, queries, docs, rows = [], [], [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            body, _, comment = line.partition("#")
            parts = body.split()
            if not parts:
                continue
            try:
                labels.append(int(parts[0]))
                queries.append(int(parts[1].removeprefix("qid:")))
                values = dict(p.split(":", 1) for p in parts[2:])
                rows.append([float(values[str(i)]) for i in range(1, len(FEATURES) + 1)])
            except (ValueError, KeyError, IndexError) as exc:
                raise MlsdError(f"{path}:{number}: not a LETOR line ({exc})") from None
            docs.append(comment.split("docid = ")[1].split()[0] if "docid = " in comment else f"{path.stem}-{number}")
    matrix = np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES))
    return pa.table({"query_id": pa.array(queries, pa.int64()), "doc_id": pa.array(docs, pa.string()),
                     "part": pa.array(np.full(len(labels), part), pa.int64()),
                     "label": pa.array(labels, pa.int64()),
                     **{f: pa.array(matrix[:, j]) for j, f in enumerate(FEATURES)},
                     "ts": pa.array(np.full(len(labels), COLLECTED_S + part), pa.int64())})


def load_judgments(root: str | os.PathLike[str] | None, parts: tuple[int, ...] = PARTS) -> pa.Table:
    """Every judgment of the checksum-verified MQ2008 files under the data directory."""
    files = locate("letor-mq2008", root)
    return pa.concat_tables([parse_letor(files[f"S{p}.txt"], p) for p in parts])
