"""Diginetica item views as click events, and SR-GNN's preprocessing of them into session prefixes.

The sample is the file SR-GNN ships (``sample_train-item-views.csv``: ``session_id;user_id;item_id;
timeframe;eventdate``). :func:`srgnn_sessions` follows SR-GNN's ``preprocess.py`` step for step:
a session's clicks ordered by ``timeframe``; a session's date is its last row's ``eventdate``;
sessions of one click dropped; items seen fewer than 5 times (counted after that) dropped from
sessions, and sessions left with fewer than 2 clicks dropped; sessions dated after the last date
minus 7 days are the test set (a date equal to the split belongs to neither, as in SR-GNN);
items are renumbered from 1 in training order, test items unknown to training are dropped, and
every prefix of a session predicts its next item (:func:`prefixes`).

A click event is ``(session_id, item_id, ts)``; ``ts`` is the session's day (UTC midnight) plus
its ``timeframe`` in seconds, so a session's clicks keep their order in event time.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from mlsd.core.errors import MlsdError
from mlsd.datasets import locate
from mlsd.events import EventSchema

DATASET = "diginetica-sample"
CLICK_SCHEMA = EventSchema("click", {"session_id": pa.int64(), "item_id": pa.int64(), "ts": pa.int64()},
                           timestamp_field="ts")
MIN_ITEM_COUNT = 5
TEST_DAYS = 7
DAY_S = 86_400


@dataclass(frozen=True)
class Click:
    session_id: int
    item_id: int
    timeframe: int
    day_s: int


def read_clicks(path: Path) -> list[Click]:
    """Every row of the file, in file order (``eventdate`` read as a UTC day)."""
    clicks = []
    with open(path, encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle, delimiter=";"), 2):
            try:
                day = datetime.strptime(row["eventdate"], "%Y-%m-%d").replace(tzinfo=UTC)
                clicks.append(Click(int(row["session_id"]), int(row["item_id"]), int(row["timeframe"]),
                                    int(day.timestamp())))
            except (KeyError, TypeError, ValueError) as exc:
                raise MlsdError(f"{path}:{number}: not a Diginetica item-view row ({exc})") from None
    return clicks


def click_events(clicks: Sequence[Click]) -> pa.Table:
    """The raw clicks as events (``ts`` = day + timeframe in seconds)."""
    return pa.table({"session_id": pa.array([c.session_id for c in clicks], pa.int64()),
                     "item_id": pa.array([c.item_id for c in clicks], pa.int64()),
                     "ts": pa.array([c.day_s + c.timeframe // 1000 for c in clicks], pa.int64())})


@dataclass
class Sessions:
    """SR-GNN's preprocessed sessions: item sequences (renumbered items) with their ids and dates."""

    train: list[list[int]]
    train_ids: list[int]
    train_dates: list[int]
    test: list[list[int]]
    test_ids: list[int]
    test_dates: list[int]
    test_times: list[list[int]]  # each test click's event time (``ts``), aligned with ``test``
    item_ids: np.ndarray  # the raw Diginetica item id of each renumbered item (index 0 unused: -1)
    split_s: int

    @property
    def items(self) -> int:
        return len(self.item_ids) - 1

    def raw(self, items: Sequence[int]) -> list[int]:
        return [int(self.item_ids[i]) for i in items]


def srgnn_sessions(clicks: Sequence[Click]) -> Sessions:
    """SR-GNN's ``preprocess.py`` for Diginetica on these clicks (see the module docstring)."""
    sequences: dict[int, list[Click]] = {}
    dates: dict[int, int] = {}
    for c in clicks:  # the date is the session's last row's (the file lists a session's rows together)
        sequences.setdefault(c.session_id, []).append(c)
        dates[c.session_id] = c.day_s
    ordered = {s: sorted(seq, key=lambda c: c.timeframe) for s, seq in sequences.items()}
    ordered = {s: seq for s, seq in ordered.items() if len(seq) > 1}
    counts: dict[int, int] = {}
    for seq in ordered.values():
        for c in seq:
            counts[c.item_id] = counts.get(c.item_id, 0) + 1
    kept_clicks = {s: [c for c in seq if counts[c.item_id] >= MIN_ITEM_COUNT] for s, seq in ordered.items()}
    kept_clicks = {s: seq for s, seq in kept_clicks.items() if len(seq) >= 2}
    kept = {s: [c.item_id for c in seq] for s, seq in kept_clicks.items()}
    if not kept:
        raise MlsdError("no session has two clicks on items seen at least 5 times")
    split = max(dates[s] for s in kept) - DAY_S * TEST_DAYS
    train_sessions = sorted(((s, dates[s]) for s in kept if dates[s] < split), key=lambda x: x[1])
    test_sessions = sorted(((s, dates[s]) for s in kept if dates[s] > split), key=lambda x: x[1])
    numbering: dict[int, int] = {}
    train: list[list[int]] = []
    train_ids, train_dates = [], []
    for s, date in train_sessions:
        train.append([numbering.setdefault(i, len(numbering) + 1) for i in kept[s]])
        train_ids.append(s)
        train_dates.append(date)
    test: list[list[int]] = []
    test_ids, test_dates, test_times = [], [], []
    for s, date in test_sessions:
        known = [c for c in kept_clicks[s] if c.item_id in numbering]
        if len(known) >= 2:
            test.append([numbering[c.item_id] for c in known])
            test_ids.append(s)
            test_dates.append(date)
            test_times.append([c.day_s + c.timeframe // 1000 for c in known])
    raw = np.full(len(numbering) + 1, -1, np.int64)
    for item, number in numbering.items():
        raw[number] = item
    return Sessions(train, train_ids, train_dates, test, test_ids, test_dates, test_times, raw, split)


@dataclass(frozen=True)
class Prefixes:
    """Every prefix of some sessions and the item that followed it (SR-GNN's ``process_seqs``)."""

    prefixes: list[list[int]]
    targets: np.ndarray
    sessions: np.ndarray  # the index of each prefix's session (for bootstrap over sessions)

    def __len__(self) -> int:
        return len(self.targets)


def prefixes(sequences: Sequence[Sequence[int]]) -> Prefixes:
    """For each session, in SR-GNN's order (longest prefix first), every prefix with its next item."""
    out, targets, owners = [], [], []
    for n, seq in enumerate(sequences):
        for i in range(1, len(seq)):
            out.append(list(seq[:-i]))
            targets.append(seq[-i])
            owners.append(n)
    return Prefixes(out, np.asarray(targets, np.int64), np.asarray(owners, np.int64))


def load_sessions(root: str | os.PathLike[str] | None) -> tuple[list[Click], Sessions]:
    """The checksum-verified sample's clicks and their SR-GNN sessions."""
    files = locate(DATASET, root)
    clicks = read_clicks(files["sample_train-item-views.csv"])
    return clicks, srgnn_sessions(clicks)
