"""Training sets and model training for ad click prediction, on every dataset the system reports.

TalkingData goes through the whole platform: the click log's rows are the labels, and their features
come from the point-in-time store (no hand-made joins). Criteo and iPinYou are flat tables (every
feature is in the row) and check the same models on hashed categorical data; the generated
marketplace has known click probabilities.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlsd.datasets.ctr import CtrData
from mlsd.datasets.marketplace import CATEGORICAL as MARKET_CATEGORICAL
from mlsd.datasets.marketplace import AdMarketplace, best_logloss
from mlsd.events.log import EventLog
from mlsd.features.store import FeatureStore
from mlsd.systems.ads.features import CATEGORICAL, LABEL, REQUEST_TIME, model_inputs, numeric_features
from mlsd.training import FeatureEncoder, FitEngine, TimeSplit, TrainingResult, train_click_model

MODELS = ("logreg", "lgbm", "dcn_v2", "ffm")


@dataclass
class TrainingSet:
    """Feature columns, labels, periods and the encoder layout of one dataset."""

    name: str
    columns: dict[str, np.ndarray]
    labels: np.ndarray
    split: TimeSplit
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    negative_rate: float = 1.0
    refit: bool = False
    feature_views: dict[str, int] | None = None
    best_logloss: float | None = None
    model_params: dict[str, dict[str, float]] | None = None
    times_s: np.ndarray | None = None  # each row's event time (epoch seconds), where the data has one

    def fingerprint(self) -> str:
        """sha256 of the labels and every feature column, in order: the exact data a model saw."""
        digest = hashlib.sha256(np.ascontiguousarray(self.labels).tobytes())
        for name in sorted(self.columns):
            values = np.asarray(self.columns[name])
            digest.update(name.encode())
            digest.update(values.astype(str).tobytes() if values.dtype.kind in "OUS" else values.tobytes())
        return digest.hexdigest()

    def encoder(self) -> FeatureEncoder:
        return FeatureEncoder(self.numeric, self.categorical)


def click_labels(log: EventLog) -> pa.Table:
    """Every logged click as a label row at its own time, with the request-time fields."""
    clicks = log.read(["event_id", "ip", "app", "device", "os", "channel", "click_time", LABEL])
    seconds = pc.divide(pc.cast(pc.cast(clicks.column("click_time"), pa.int64()), pa.float64()), 1e6)
    return clicks.rename_columns(["event_timestamp" if c == "click_time" else c for c in clicks.column_names]) \
        .append_column(REQUEST_TIME, seconds)


def talkingdata_set(store: FeatureStore, log: EventLog, negative_rate: float = 1.0,
                    name: str = "talkingdata") -> TrainingSet:
    """Point-in-time training frame of a click log: test on its last calendar day, validate on the day before.

    On the TalkingData sample that is train < 11-08, validate 11-08, test 11-09.
    """
    views = list(store.views)
    frame = store.training_frame(click_labels(log), views).read_all().sort_by("event_timestamp")
    view_objects = [store.view(v) for v in views]
    numeric = numeric_features(view_objects)
    features = {c: frame.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
                for c in numeric if c in frame.column_names}
    columns = model_inputs(features, {c: frame.column(c).to_numpy() for c in CATEGORICAL})
    stamps = frame.column("event_timestamp").cast(pa.int64()).to_numpy().astype("datetime64[us]")
    test_day = stamps.max().astype("datetime64[D]")
    split = TimeSplit.by_time(stamps, (test_day - 1).astype("datetime64[us]"), test_day.astype("datetime64[us]"))
    # TalkingData has 85 training positives: trees need large leaves not to memorize them
    few_positives = float(frame.column(LABEL).to_numpy()[split.train].sum()) < 1000
    return TrainingSet(name, columns, frame.column(LABEL).to_numpy().astype(np.float32), split, numeric,
                       CATEGORICAL, negative_rate,
                       feature_views={v.name: v.version for v in view_objects},
                       model_params={"lgbm": {"num_leaves": 7, "min_child_samples": 100}} if few_positives else None,
                       times_s=stamps.astype(np.int64) / 1e6)


def flat_set(data: CtrData) -> TrainingSet:
    """A Criteo / iPinYou table with its files' own train / validation / test periods."""
    return TrainingSet(data.name, data.columns, data.labels, TimeSplit(data.train, data.valid, data.test),
                       data.numeric, data.categorical)


def marketplace_set(rows: int = 400_000, seed: int = 0) -> TrainingSet:
    """Generated impressions over 7 days: train days 0-4, validate day 5, test day 6."""
    world = AdMarketplace(seed)
    table = world.events(rows, days=7.0)
    columns = {c: table.column(c).to_numpy() for c in MARKET_CATEGORICAL}
    columns["hour_of_day"] = columns["hour"].astype(np.float64)
    stamps = table.column("event_timestamp").cast(pa.int64()).to_numpy()
    day = (stamps - stamps.min()) // 86_400_000_000
    split = TimeSplit(np.flatnonzero(day < 5), np.flatnonzero(day == 5), np.flatnonzero(day >= 6))
    truth = table.column("p_true").to_numpy()
    return TrainingSet("marketplace", columns, table.column("click").to_numpy().astype(np.float32), split,
                       ("hour_of_day",), MARKET_CATEGORICAL, negative_rate=0.25,
                       best_logloss=best_logloss(truth[split.test]))


def train_all(data: TrainingSet, models: Sequence[str] = MODELS, seed: int = 0,
              on_model: Callable[[str, TrainingResult], None] | None = None,
              engine: Callable[[str], FitEngine | None] | None = None) -> dict[str, TrainingResult]:
    """Every model kind on one training set with the standard recipe (see ``train_click_model``);
    ``engine(kind)`` says where each kind's fit runs (embedded when it answers None)."""
    results = {}
    for kind in models:
        result = train_click_model(kind, data.columns, data.labels, data.split, data.encoder(),
                                   negative_rate=data.negative_rate, seed=seed, refit=data.refit,
                                   calibration="platt", model_params=(data.model_params or {}).get(kind),
                                   engine=engine(kind) if engine else None)
        results[kind] = result
        if on_model is not None:
            on_model(kind, result)
    return results
