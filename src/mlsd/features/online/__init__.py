"""Online stores: packed feature vectors per (feature view, entity), read in batches."""

from mlsd.features.online.base import OnlineStore, encode_keys
from mlsd.features.online.codec import VectorCodec
from mlsd.features.online.redis_store import RedisOnlineStore
from mlsd.features.online.select import open_online_store
from mlsd.features.online.sqlite_store import SqliteOnlineStore

__all__ = ["OnlineStore", "RedisOnlineStore", "SqliteOnlineStore", "VectorCodec", "encode_keys", "open_online_store"]
