"""The recommendation system's events and feature definitions.

Ratings are the events (a rating is a watch: implicit feedback). From them the feature store keeps,
per user, the count, mean rating, time since the last rating and the last five items (``nth_last``);
per item, its popularity over 7 days, 30 days and all time and its mean rating. User attributes and
item release years are batch feature views over Parquet tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlsd.datasets.movielens import MovieLens
from mlsd.events import EventLog, EventSchema
from mlsd.features import Aggregation, AggregationView, Entity, EventLogSource, Feature, FeatureView, TableSource
from mlsd.features.definitions import AnyView

RATINGS_SCHEMA = EventSchema("rating", {"user_id": pa.int64(), "item_id": pa.int64(), "rating": pa.float64(),
                                        "ts": pa.int64()}, timestamp_field="ts")
USER = Entity("user", ("user_id",))
ITEM = Entity("item", ("item_id",))
LAST_N = 5
USER_VIEWS = ("user_history", "user_profile")
ITEM_VIEWS = ("item_popularity", "item_profile")


def ratings_table(frame: pd.DataFrame) -> pa.Table:
    """Ratings (user_id, item_id, rating, timestamp) as events; ``ts`` in epoch seconds."""
    return pa.table({
        "user_id": pa.array(frame["user_id"].to_numpy(np.int64)),
        "item_id": pa.array(frame["item_id"].to_numpy(np.int64)),
        "rating": pa.array(frame["rating"].to_numpy(np.float64)),
        "ts": pa.array(frame["timestamp"].to_numpy(np.int64)),
    })


def write_profiles(data: MovieLens, directory: Path) -> tuple[Path, Path]:
    """User attributes and item years as Parquet tables valid from the epoch (static attributes)."""
    def since_epoch(rows: int) -> pa.Array:
        return pa.array(np.zeros(rows, np.int64)).cast(pa.timestamp("us", tz="UTC"))

    directory.mkdir(parents=True, exist_ok=True)
    users = pa.table({"user_id": data.users["user_id"].to_numpy(np.int64),
                      **{c: data.users[c].to_numpy(np.float64) for c in ("age", "gender", "occupation")},
                      "event_timestamp": since_epoch(len(data.users))})
    items = pa.table({"item_id": data.items["item_id"].to_numpy(np.int64),
                      "year": data.items["year"].to_numpy(np.float64), "event_timestamp": since_epoch(len(data.items))})
    user_path, item_path = directory / "users.parquet", directory / "items.parquet"
    pq.write_table(users, user_path)
    pq.write_table(items, item_path)
    return user_path, item_path


def recs_views(log: EventLog, profiles: Path) -> list[AnyView]:
    """Every view the ranker reads (``profiles`` holds the tables of :func:`write_profiles`)."""
    source = EventLogSource(log)
    return [
        AggregationView("user_history", (USER,), source, (
            Aggregation("count", name="ratings"),
            Aggregation("mean", "rating", name="mean_rating"),
            Aggregation("time_since_last", name="seconds_since_last"),
            *(Aggregation("nth_last", "item_id", n=n, name=f"last_item_{n}") for n in range(1, LAST_N + 1)),
        )),
        AggregationView("item_popularity", (ITEM,), source, (
            Aggregation("count", window="7d", name="count_7d"),
            Aggregation("count", window="30d", name="count_30d"),
            Aggregation("count", name="count_all"),
            Aggregation("mean", "rating", name="mean_rating"),
        )),
        FeatureView("user_profile", (USER,), TableSource(str(profiles / "users.parquet")),
                    (Feature("age"), Feature("gender"), Feature("occupation"))),
        FeatureView("item_profile", (ITEM,), TableSource(str(profiles / "items.parquet")), (Feature("year"),)),
    ]
