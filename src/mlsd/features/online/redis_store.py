"""Redis online store: one string key per (project, view, entity) holding the packed vector; reads are MGET.

A Redis server that restarts without persistence comes back empty, and an empty store reads as
"no value" for every key: served as defaults, every feature would silently be 0 or missing. So the
store keeps a *materialization epoch*: a random token set (if absent) with every bookkeeping write
(:meth:`set_meta`, which a materialization ends with; stream updates alone never set it), and read
back in the same ``MGET`` as the values, at no extra round trip. A store that has seen an epoch
and then reads none raises :class:`~mlsd.core.errors.StoreUnavailableError` instead of answering;
:meth:`ready` says whether the store holds a materialization now. A new epoch (someone
re-materialized) is adopted.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import cast

import redis

from mlsd.core.errors import StoreUnavailableError


class RedisOnlineStore:
    """Online store on a Redis server; ``namespace`` keeps projects (and tests) apart."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", namespace: str = "mlsd") -> None:
        self.client = redis.Redis.from_url(url)
        self.url = url
        self.namespace = namespace
        self._prefixes: dict[str, bytes] = {}
        self._epoch_key = f"{namespace}:epoch".encode()
        self.epoch: bytes | None = None  # the materialization this store has read or written

    def _prefix(self, view: str) -> bytes:
        prefix = self._prefixes.get(view)
        if prefix is None:
            prefix = f"{self.namespace}:fv:{view}:".encode()
            self._prefixes[view] = prefix
        return prefix

    def write_batch(self, view: str, keys: Sequence[bytes], values: Sequence[bytes]) -> None:
        prefix = self._prefix(view)
        pipe = self.client.pipeline(transaction=True)
        chunk = 10_000
        for start in range(0, len(keys), chunk):
            pipe.mset({prefix + k: v for k, v in zip(keys[start:start + chunk], values[start:start + chunk],
                                                    strict=True)})
        pipe.execute()

    def read_batch(self, view: str, keys: Sequence[bytes]) -> list[bytes | None]:
        prefix = self._prefix(view)
        try:
            values = cast("list[bytes | None]", self.client.mget([self._epoch_key, *(prefix + k for k in keys)]))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailableError(f"online store: Redis at {self.url} unreachable: {exc}") from None
        self._check_epoch(values[0])
        return values[1:]

    def _check_epoch(self, epoch: bytes | None) -> None:
        if epoch is None and self.epoch is not None:
            raise StoreUnavailableError(f"online store: Redis at {self.url} lost its data (restarted empty?); "
                                        "materialize the feature views again")
        if epoch is not None:
            self.epoch = epoch

    def ready(self) -> bool:
        """Whether the store holds a materialization (its epoch is there), adopting a new one."""
        try:
            epoch = cast("bytes | None", self.client.get(self._epoch_key))
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        if epoch is not None:
            self.epoch = epoch
        return epoch is not None

    def delete_view(self, view: str) -> None:
        pattern = self._prefix(view) + b"*"
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=pattern, count=10_000):
            batch.append(key)
            if len(batch) >= 10_000:
                self.client.delete(*batch)
                batch = []
        if batch:
            self.client.delete(*batch)

    def get_meta(self, name: str) -> str | None:
        value = self.client.hget(f"{self.namespace}:meta", name)
        return None if value is None else cast(bytes, value).decode()

    def set_meta(self, name: str, value: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(f"{self.namespace}:meta", name, value)
        pipe.set(self._epoch_key, secrets.token_hex(8), nx=True)
        pipe.get(self._epoch_key)
        self.epoch = cast("bytes", pipe.execute()[-1])

    def close(self) -> None:
        self.client.close()
