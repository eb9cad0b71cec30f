"""Every online store and every stream transport passes its family's contract kit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlsd.events import EmbeddedStream, RedisStream, StreamTransport
from mlsd.events import contract as transport_contract
from mlsd.features.online import OnlineStore, RedisOnlineStore, SqliteOnlineStore
from mlsd.features.online import contract as store_contract


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def online_store(request: pytest.FixtureRequest, tmp_path: Path, namespace: str) -> Iterator[OnlineStore]:
    if request.param == "sqlite":
        store: OnlineStore = SqliteOnlineStore(tmp_path / "online.db")
    else:
        store = RedisOnlineStore(request.getfixturevalue("redis_url"), namespace=namespace)
    yield store
    if isinstance(store, RedisOnlineStore):
        keys = list(store.client.scan_iter(match=f"{namespace}:*"))
        if keys:
            store.client.delete(*keys)
    store.close()


@pytest.mark.parametrize("check", store_contract.CHECKS, ids=lambda c: c.__name__)
def test_online_store_contract(online_store: OnlineStore, check: Callable[[OnlineStore], None]) -> None:
    assert isinstance(online_store, OnlineStore)
    check(online_store)


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def transport(request: pytest.FixtureRequest, namespace: str) -> Iterator[StreamTransport]:
    if request.param == "embedded":
        yield EmbeddedStream()
        return
    stream = RedisStream(f"{namespace}:events", request.getfixturevalue("redis_url"))
    yield stream
    stream.delete()


@pytest.mark.parametrize("check", transport_contract.CHECKS, ids=lambda c: c.__name__)
def test_transport_contract(transport: StreamTransport, check: Callable[[StreamTransport], None]) -> None:
    assert isinstance(transport, StreamTransport)
    check(transport)
