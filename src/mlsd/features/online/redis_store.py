"""Redis online store: one string key per (project, view, entity) holding the packed vector; reads are MGET."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import redis


class RedisOnlineStore:
    """Online store on a Redis server; ``namespace`` keeps projects (and tests) apart."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", namespace: str = "mlsd") -> None:
        self.client = redis.Redis.from_url(url)
        self.namespace = namespace
        self._prefixes: dict[str, bytes] = {}

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
        if len(keys) == 1:
            return [cast("bytes | None", self.client.get(prefix + keys[0]))]
        return cast("list[bytes | None]", self.client.mget([prefix + k for k in keys]))

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
        self.client.hset(f"{self.namespace}:meta", name, value)

    def close(self) -> None:
        self.client.close()
