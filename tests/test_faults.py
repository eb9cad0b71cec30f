"""Faults in the parts mlsd depends on: a Redis server killed, restarted empty, or failing mid-publish.

Each test runs its own ``redis-server`` (no persistence, as the machine's) on a free port, so it can
be killed and restarted without touching the shared one.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import redis

from mlsd.core.errors import StoreUnavailableError
from mlsd.events import EventLog, EventSchema, Ingestor, RedisStream
from mlsd.features import RedisOnlineStore

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")

CLICKS = EventSchema("clicks", {"ip": pa.int64(), "app": pa.int32(), "click_time": pa.string()},
                     timestamp_field="click_time")


class PrivateRedis:
    """A redis-server of the test's own on a free port; ``kill()`` and ``start()`` at will."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def server() -> Iterator[PrivateRedis]:
    private = PrivateRedis()
    private.start()
    yield private
    if private.process is not None and private.process.poll() is None:
        private.kill()


def test_an_online_store_restarted_empty_is_not_served_as_zeros(server: PrivateRedis) -> None:
    store = RedisOnlineStore(server.url, namespace="t")
    store.write_batch("v", [b"a", b"b"], [b"1", b"2"])
    store.set_meta("materialized_until:v", "10")  # what a materialization ends with
    assert store.read_batch("v", [b"a", b"b"]) == [b"1", b"2"]
    assert store.ready()
    server.kill()
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        store.read_batch("v", [b"a"])
    assert not store.ready()
    server.start()  # empty, as a server without persistence comes back
    with pytest.raises(StoreUnavailableError, match="lost its data"):
        store.read_batch("v", [b"a"])  # before: [None], which the feature store served as 0 / missing
    store.write_batch("v", [b"a"], [b"3"])  # a stream update alone does not make it whole again
    with pytest.raises(StoreUnavailableError):
        store.read_batch("v", [b"a"])
    store.set_meta("materialized_until:v", "20")  # re-materialized: a new epoch
    assert store.read_batch("v", [b"a", b"b"]) == [b"3", None]
    assert store.ready()
    store.close()


def test_a_fresh_store_reads_as_before(server: PrivateRedis) -> None:
    store = RedisOnlineStore(server.url, namespace="fresh")
    assert store.read_batch("v", [b"x"]) == [None]  # nothing was ever materialized: nothing was lost
    assert not store.ready()


def _records(start: int, n: int) -> list[dict[str, Any]]:
    return [{"ip": i, "app": 1, "click_time": "2017-11-07 09:30:38"} for i in range(start, start + n)]


def test_publish_and_consume_ride_out_a_redis_restart(server: PrivateRedis, tmp_path: Path) -> None:
    stream = RedisStream("clicks", server.url, retry_for_s=20)
    ingestor = Ingestor(EventLog(tmp_path, CLICKS))
    stream.publish(_records(0, 50))
    assert ingestor.consume(stream, "ingest", "c1", block_ms=10).accepted == 50
    server.kill()
    restarter = threading.Timer(0.5, server.start)
    restarter.start()
    stream.publish(_records(50, 30))  # before: redis.ConnectionError at once
    restarter.join()
    # the server came back empty: the group is made again and the consumer goes on
    assert ingestor.consume(stream, "ingest", "c1", block_ms=10).accepted == 30
    assert ingestor.log.read(["ip"]).num_rows == 80


def test_a_publish_applied_half_way_creates_no_duplicates(server: PrivateRedis, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    stream = RedisStream("clicks", server.url, retry_for_s=5)
    original = redis.client.Pipeline.execute
    failures = iter([True])

    def flaky(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if next(failures, False):  # the entries landed, then the connection dropped before the reply
            raise redis.ConnectionError("connection reset by peer")
        return result

    monkeypatch.setattr(redis.client.Pipeline, "execute", flaky)
    stream.publish(_records(0, 20))
    assert stream.length() == 40  # sent twice
    report = Ingestor(EventLog(tmp_path, CLICKS)).consume(stream, "ingest", "c1", block_ms=10)
    assert (report.accepted, report.duplicates) == (20, 20)


def test_an_unreachable_stream_fails_loudly_after_its_retries(server: PrivateRedis) -> None:
    stream = RedisStream("clicks", server.url, retry_for_s=0.3)
    server.kill()
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        stream.publish(_records(0, 1))
    assert time.monotonic() - started < 5
