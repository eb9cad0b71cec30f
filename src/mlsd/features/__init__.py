"""Features: definitions, the point-in-time offline store, online stores, streaming aggregates, push."""

from mlsd.features.cache import OnlineFeatureCache
from mlsd.features.definitions import (
    Aggregation,
    AggregationView,
    Entity,
    EventLogSource,
    Feature,
    FeatureView,
    OnDemandView,
    TableSource,
    vector_feature,
)
from mlsd.features.offline import OfflineStore, output_column
from mlsd.features.online import OnlineStore, RedisOnlineStore, SqliteOnlineStore, encode_keys, open_online_store
from mlsd.features.push import PushIntake, PushRejectedError, PushResult
from mlsd.features.store import FeatureStore
from mlsd.features.streaming import StreamProcessor
from mlsd.features.windows import WindowedAggregator

__all__ = [
    "Aggregation",
    "AggregationView",
    "Entity",
    "EventLogSource",
    "Feature",
    "FeatureStore",
    "FeatureView",
    "OfflineStore",
    "OnDemandView",
    "OnlineFeatureCache",
    "OnlineStore",
    "PushIntake",
    "PushRejectedError",
    "PushResult",
    "RedisOnlineStore",
    "SqliteOnlineStore",
    "StreamProcessor",
    "TableSource",
    "WindowedAggregator",
    "encode_keys",
    "open_online_store",
    "output_column",
    "vector_feature",
]
