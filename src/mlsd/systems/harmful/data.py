"""Davidson et al. (2017) tweets as posts, and the paper notebook's split of them.

``labeled_data.csv``: one row per tweet with its id (first, unnamed column), the annotators' votes
(``hate_speech``, ``offensive_language``, ``neither``) and the majority ``class`` (0 hate, 1 offensive,
2 neither). The paper's notebook splits with ``train_test_split(test_size=0.1, random_state=42)``
without stratification (test counts 164 / 1,905 / 410); :func:`paper_split` does exactly that, then
carves a validation part (10%, stratified) from the training part only. Tweets carry no time: a
post's event time is ``POSTED_S`` plus 10 s per row, so the event log and the feature store have one.

Without a data directory, :func:`generated_posts` stands in (as the ads system's generated clicks
do): short synthetic posts whose class shows in marker words (``slur_3``, ``insult_7``), mixed with
everyday words, in the dataset's class proportions, three votes each. They exercise the whole loop,
not the models: figures come from the real data.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from sklearn.model_selection import train_test_split

from mlsd.core.errors import MlsdError
from mlsd.core.paths import data_dir
from mlsd.datasets import locate
from mlsd.events import EventSchema

DATASET = "davidson-hate-speech"
CLASSES = ("hate", "offensive", "neither")
HATE, OFFENSIVE, NEITHER = range(3)
POST_SCHEMA = EventSchema("post", {"post_id": pa.int64(), "text": pa.string(), "ts": pa.int64()},
                          timestamp_field="ts", id_field=None)
POSTED_S = 1_483_228_800  # 2017-01-01 UTC: the first post's event time
SPACING_S = 10
TEST_SIZE = 0.1
VALID_SIZE = 0.1
PAPER_SEED = 42


@dataclass(frozen=True)
class Posts:
    """The tweets in file order: ids, texts, majority class, annotator votes ``(n, 3)``."""

    ids: np.ndarray
    texts: list[str]
    labels: np.ndarray
    votes: np.ndarray
    source: str = DATASET  # "generated" for generated_posts

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def times_s(self) -> np.ndarray:
        return POSTED_S + SPACING_S * np.arange(len(self), dtype=np.int64)

    def events(self, rows: np.ndarray | None = None) -> pa.Table:
        """Posts as events (``post_id``, ``text``, ``ts``), the rows given (default all), in file order."""
        rows = np.arange(len(self)) if rows is None else np.sort(rows)
        return pa.table({"post_id": self.ids[rows], "text": [self.texts[i] for i in rows],
                         "ts": self.times_s[rows]})

    def subset(self, rows: np.ndarray) -> Posts:
        return Posts(self.ids[rows], [self.texts[i] for i in rows], self.labels[rows], self.votes[rows], self.source)


GENERATED_SHARES = (0.06, 0.77, 0.17)  # hate, offensive, neither: the dataset's proportions
_EVERYDAY = ("today", "game", "coffee", "rain", "music", "weekend", "phone", "school", "lunch", "friends", "movie",
             "sunny", "work", "bus", "dog", "pizza", "news", "team", "class", "night")


def generated_posts(n: int = 3000, seed: int = 0) -> Posts:
    """Synthetic posts with their class in marker words (no data directory needed); see the module."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, n, p=GENERATED_SHARES)
    markers = {HATE: "slur", OFFENSIVE: "insult"}
    texts = []
    for label in labels:
        words = list(rng.choice(_EVERYDAY, rng.integers(4, 12)))
        marks = rng.integers(1, 3) if label in markers else 0
        if label == HATE and rng.random() < 0.5:
            words.append(f"insult_{rng.integers(10)}")  # hate posts are often offensive too
        words += [f"{markers[int(label)]}_{rng.integers(10)}" for _ in range(marks)]
        rng.shuffle(words)
        texts.append(" ".join(words))
    votes = np.zeros((n, 3))
    votes[np.arange(n), labels] = rng.integers(2, 4, n)
    votes[np.arange(n), (labels + 1) % 3] = 3 - votes[np.arange(n), labels]
    return Posts(np.arange(n, dtype=np.int64), texts, labels.astype(np.int64), votes, "generated")


def load_posts(data: str | os.PathLike[str] | None) -> Posts:
    """Every row of ``labeled_data.csv`` (checksum-verified), in file order; generated posts without a
    data directory (``--data`` or ``MLSD_DATA_DIR``)."""
    if data_dir(data) is None:
        return generated_posts()
    path = locate(DATASET, data)["labeled_data.csv"]
    ids, texts, labels, votes = [], [], [], []
    with open(path, encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), 2):
            try:
                ids.append(int(row[""]))
                texts.append(row["tweet"])
                labels.append(int(row["class"]))
                votes.append([int(row["hate_speech"]), int(row["offensive_language"]), int(row["neither"])])
            except (KeyError, TypeError, ValueError) as exc:
                raise MlsdError(f"{path}:{number}: not a Davidson labeled_data row ({exc})") from None
    return Posts(np.asarray(ids, np.int64), texts, np.asarray(labels, np.int64), np.asarray(votes, np.float64))


@dataclass(frozen=True)
class Split:
    """Row numbers of the three parts (each in the order ``train_test_split`` returns them)."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    seed: int


def paper_split(labels: np.ndarray, seed: int = PAPER_SEED) -> Split:
    """The notebook's test split (not stratified), then validation carved from its training part."""
    rows = np.arange(len(labels))
    train, test = train_test_split(rows, test_size=TEST_SIZE, random_state=seed)
    fit, valid = train_test_split(train, test_size=VALID_SIZE, random_state=seed, stratify=labels[train])
    return Split(np.asarray(fit), np.asarray(valid), np.asarray(test), seed)


def soft_targets(votes: np.ndarray) -> np.ndarray:
    """The annotators' vote shares per class (each row sums to 1): the label's own uncertainty."""
    return np.asarray(votes / np.maximum(votes.sum(axis=1, keepdims=True), 1.0))
