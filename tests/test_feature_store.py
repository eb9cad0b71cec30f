"""The feature store end to end: materialization, online reads (TTL, time-since), on-demand parity,
and the stream processor keeping the online store equal to the offline definition."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlsd.core.errors import DefinitionError, MlsdError
from mlsd.core.timeutil import TIMESTAMP
from mlsd.events import EmbeddedStream, EventLog, Ingestor, RedisStream, StreamTransport
from mlsd.features import (
    AggregationView,
    EventLogSource,
    Feature,
    FeatureStore,
    FeatureView,
    OnDemandView,
    OnlineFeatureCache,
    PushIntake,
    PushRejectedError,
    SqliteOnlineStore,
    TableSource,
)
from tests.test_point_in_time import AGGREGATIONS, BASE_US, SCHEMA, USER, S


@pytest.fixture
def profile_store(tmp_path: Path) -> Iterator[FeatureStore]:
    path = tmp_path / "profiles.parquet"
    pq.write_table(pa.table({
        "user": [1, 1, 2],
        "event_timestamp": pa.array([BASE_US, BASE_US + 10 * S, BASE_US], pa.int64()).cast(TIMESTAMP),
        "age": [30.0, 31.0, 40.0], "score": [0.5, 0.6, 0.7],
    }), path)
    view = FeatureView("profile", (USER,), TableSource(str(path)), (Feature("age"), Feature("score")),
                       ttl=timedelta(seconds=100))
    ratio = OnDemandView("ratio", ("profile:score", "price"), (Feature("score_per_price"),),
                         lambda c: {"score_per_price": c["profile__score"] / np.maximum(c["price"], 1.0)})
    store = FeatureStore(SqliteOnlineStore(tmp_path / "online.db"), views=[view, ratio])
    yield store
    store.online.close()


def test_materialize_is_incremental_and_idempotent(profile_store: FeatureStore) -> None:
    assert profile_store.materialize(["profile"], end_us=BASE_US + 5 * S) == {"profile": 2}
    assert profile_store.materialize(["profile"], end_us=BASE_US + 5 * S) == {"profile": 0}
    values = profile_store.online_vectors("profile", [b"1", b"2", b"3"], at_us=BASE_US + 6 * S)
    np.testing.assert_array_equal(values[:, 0], [30.0, 40.0, np.nan])
    assert profile_store.materialize(["profile"], end_us=BASE_US + 20 * S) == {"profile": 1}
    assert profile_store.online_vectors("profile", [b"1"], at_us=BASE_US + 21 * S)[0, 0] == 31.0


def test_online_reads_respect_ttl(profile_store: FeatureStore) -> None:
    profile_store.materialize(["profile"], end_us=BASE_US + 20 * S)
    fresh = profile_store.online_vectors("profile", [b"1", b"2"], at_us=BASE_US + 100 * S)
    stale = profile_store.online_vectors("profile", [b"1", b"2"], at_us=BASE_US + 105 * S)
    np.testing.assert_array_equal(fresh[:, 0], [31.0, 40.0])
    np.testing.assert_array_equal(stale[:, 0], [31.0, np.nan])


def test_on_demand_view_gives_identical_values_offline_and_online(profile_store: FeatureStore) -> None:
    profile_store.materialize(["profile"], end_us=BASE_US + 20 * S)
    at = BASE_US + 30 * S
    labels = pa.table({"user": [1, 2, 3], "price": [2.0, 0.5, 4.0],
                       "event_timestamp": pa.array([at] * 3, pa.int64()).cast(TIMESTAMP)})
    offline = profile_store.training_frame(labels, ["profile", "ratio"]).read_all().sort_by("user")
    online = profile_store.online_features(["profile", "ratio"], {"user": [1, 2, 3]},
                                           request={"price": [2.0, 0.5, 4.0]}, at_us=at)
    for column in ("profile__score", "ratio__score_per_price"):
        np.testing.assert_array_equal(offline.column(column).to_numpy(zero_copy_only=False), online[column])
    assert online["ratio__score_per_price"][0] == pytest.approx(0.3)


def test_unknown_views_and_missing_keys_are_clear_errors(profile_store: FeatureStore) -> None:
    with pytest.raises(DefinitionError, match="unknown feature view 'nope'"):
        profile_store.online_features(["nope"], {"user": [1]})
    with pytest.raises(DefinitionError, match="needs join key 'user'"):
        profile_store.online_features(["profile"], {"account": [1]})


def _events(n: int, seed: int = 0) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    times = np.sort(BASE_US + rng.integers(0, 30 * S, n))
    return [{"event_id": f"e{i}", "user": int(rng.integers(0, 8)), "value": float(rng.integers(-5, 6)),
             "category": int(rng.integers(0, 4)), "ts": int(t) / 1e6} for i, t in enumerate(times)]


def _stream_then_compare(tmp_path: Path, transport: StreamTransport) -> None:
    log = EventLog(tmp_path / "log", SCHEMA)
    view = AggregationView("agg", (USER,), EventLogSource(log), AGGREGATIONS)
    online = SqliteOnlineStore(tmp_path / "online.db")
    store = FeatureStore(online, views=[view])
    processor = store.stream_processor(["agg"])
    events = _events(400)
    transport.publish(events[:250])
    transport.publish(events[200:])  # a producer retry: 50 events sent twice
    transport.publish([{"event_id": "bad", "user": "x", "value": 1.0, "category": 0, "ts": events[0]["ts"]}])
    ingest = threading.Thread(target=lambda: Ingestor(log).consume(transport, "ingest", "i1", block_ms=20))
    ingest.start()
    stats = processor.run(transport, "online", "p1", batch=64, block_ms=20, max_idle_polls=3)
    ingest.join()
    assert (stats.events, stats.duplicates, stats.rejected) == (400, 50, 1)
    assert len(log) == 400
    end = max(int(e["ts"] * 1e6) for e in events)  # type: ignore[call-overload]
    at = end + 1
    streamed = store.online_features(["agg"], {"user": list(range(8))}, at_us=at)
    labels = pa.table({"user": list(range(8)), "event_timestamp": pa.array([at] * 8, pa.int64()).cast(TIMESTAMP)})
    offline = store.training_frame(labels, ["agg"]).read_all().sort_by("user")
    materialized = FeatureStore(SqliteOnlineStore(tmp_path / "batch.db"), views=[view])
    materialized.materialize(["agg"], end_us=end)
    batch = materialized.online_features(["agg"], {"user": list(range(8))}, at_us=at)
    for name in view.feature_names:
        column = f"agg__{name}"
        expected = offline.column(column).to_numpy(zero_copy_only=False).astype(float)
        np.testing.assert_allclose(streamed[column], expected, rtol=1e-9, err_msg=column)
        np.testing.assert_allclose(batch[column], expected, rtol=1e-9, err_msg=column)


def test_stream_processor_matches_offline_embedded(tmp_path: Path) -> None:
    _stream_then_compare(tmp_path, EmbeddedStream())


@pytest.mark.redis
def test_stream_processor_matches_offline_redis(tmp_path: Path, redis_url: str, namespace: str) -> None:
    stream = RedisStream(f"{namespace}:events", redis_url)
    try:
        _stream_then_compare(tmp_path, stream)
    finally:
        stream.delete()


def test_one_event_at_a_time_matches_offline(tmp_path: Path) -> None:
    # A live replay feeds the processor one event per request: the sparse update path must agree
    # with the offline definition exactly, including window expiry of single-event chunks.
    rng = np.random.default_rng(9)
    times = np.sort(BASE_US + rng.integers(0, 30 * S, 500))
    events = [{"event_id": f"s{i}", "user": int(rng.integers(0, 100)), "value": float(rng.integers(-5, 6)),
               "category": int(rng.integers(0, 4)), "ts": int(t) / 1e6} for i, t in enumerate(times)]
    log = EventLog(tmp_path / "log", SCHEMA)
    view = AggregationView("agg", (USER,), EventLogSource(log), AGGREGATIONS)
    store = FeatureStore(SqliteOnlineStore(tmp_path / "online.db"), views=[view])
    stream = EmbeddedStream()
    stream.publish(events)
    Ingestor(log).consume(stream, "ingest", "i1", block_ms=10)
    processor = store.stream_processor(["agg"])
    for event in events:
        processor.process_records([event])
    _online_equals_offline(store, view, list(range(100)), int(times[-1]) + 1)
    assert len(processor.aggregators[0]._chunks) < len(events)  # expired single-event chunks were freed


def _online_equals_offline(store: FeatureStore, view: AggregationView, users: list[int], at: int) -> pa.Table:
    """The streamed online values of ``users`` at ``at`` equal the offline point-in-time frame; returns it."""
    streamed = store.online_features([view.name], {"user": users}, at_us=at)
    labels = pa.table({"user": users, "event_timestamp": pa.array([at] * len(users), pa.int64()).cast(TIMESTAMP)})
    offline = store.training_frame(labels, [view.name]).read_all().sort_by("user")
    for name in view.feature_names:
        column = f"{view.name}__{name}"
        expected = offline.column(column).to_numpy(zero_copy_only=False).astype(float)
        np.testing.assert_allclose(streamed[column], expected, rtol=1e-9, err_msg=column)
    return offline


def test_online_feature_cache_serves_from_memory_until_max_age(profile_store: FeatureStore) -> None:
    profile_store.materialize(["profile"], end_us=BASE_US + 5 * S)
    now = [0.0]
    cache = OnlineFeatureCache(profile_store, ["profile"], "user", [1, 2, 3], max_age_s=1.0, clock=lambda: now[0])
    at = BASE_US + 6 * S
    first = cache.take(np.array([[0, 2], [1, -1]]), at_us=at)
    np.testing.assert_array_equal(first["profile__age"], [[30.0, np.nan], [40.0, np.nan]])
    direct = profile_store.online_features(["profile"], {"user": [1, 2, 3]}, at_us=at)
    np.testing.assert_array_equal(cache.columns(at)["profile__score"], direct["profile__score"])
    profile_store.materialize(["profile"], end_us=BASE_US + 20 * S)  # user 1 becomes 31
    now[0] = 0.9
    assert cache.take(np.array([0]), at_us=at)["profile__age"][0] == 30.0  # still within max_age
    assert cache.refreshes == 1
    now[0] = 1.2
    assert cache.take(np.array([0]), at_us=BASE_US + 21 * S)["profile__age"][0] == 31.0
    assert cache.refreshes == 2
    with pytest.raises(ValueError, match="max_age_s"):
        OnlineFeatureCache(profile_store, ["profile"], "user", [1], max_age_s=-1)


def test_push_intake_is_durable_atomic_idempotent_and_resumes_from_the_log(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    times = np.sort(BASE_US + rng.integers(0, 30 * S, 300))
    events = [{"event_id": f"p{i}", "user": int(rng.integers(0, 20)), "value": float(rng.integers(-5, 6)),
               "category": int(rng.integers(0, 4)), "ts": int(t) / 1e6} for i, t in enumerate(times)]

    def open_intake() -> tuple[EventLog, FeatureStore, PushIntake]:
        log = EventLog(tmp_path / "log", SCHEMA)
        store = FeatureStore(SqliteOnlineStore(tmp_path / "online.db"),
                             views=[AggregationView("agg", (USER,), EventLogSource(log), AGGREGATIONS)])
        return log, store, PushIntake(store, log, ["agg"])

    log, store, intake = open_intake()
    assert intake.push(events[:200]).accepted == 200
    bad = [dict(events[200]), {**events[201], "value": "lots"}, {**events[202], "colour": 1}]
    with pytest.raises(PushRejectedError) as refused:
        intake.push(bad)
    assert [e["field"] for e in refused.value.errors] == ["[1].value", "[2].colour"]
    assert len(log) == 200  # the batch's good event was not written either
    resent = intake.push(events[150:200])
    assert (resent.accepted, resent.duplicates) == (0, 50)
    with pytest.raises(MlsdError, match="already open for writing"):
        EventLog(tmp_path / "log", SCHEMA)  # one intake per log
    log.close()
    store.online.close()

    log, store, intake = open_intake()  # a restart: the processor replays the log before new pushes
    assert intake.push(events[200:]).accepted == 100
    at = int(times[-1]) + 1
    users = list(range(20))
    online = store.online_features(["agg"], {"user": users}, at_us=at)
    labels = pa.table({"user": users, "event_timestamp": pa.array([at] * 20, pa.int64()).cast(TIMESTAMP)})
    offline = store.training_frame(labels, ["agg"]).read_all().sort_by("user")
    for name in (a.name for a in AGGREGATIONS):
        expected = offline.column(f"agg__{name}").to_numpy(zero_copy_only=False).astype(float)
        np.testing.assert_allclose(online[f"agg__{name}"], expected, rtol=1e-9, err_msg=name)
    assert np.nansum(online["agg__count_all"]) == 300  # every event counted once, across the restart and the resend
    log.close()
    store.online.close()


def test_a_view_ttl_bounds_the_stream_state_and_keeps_it_exact(tmp_path: Path) -> None:
    """Short sessions one after another: with a 10 s ttl the processor keeps only the recent keys (memory
    bounded by the keys active within a ttl, not by every key ever seen), and every key, forgotten or not,
    reads online exactly as offline."""
    rng = np.random.default_rng(4)
    events = []
    for user in range(3000):  # user u is active for ~3 s from second u / 10
        start = BASE_US + user * S // 10
        for i, t in enumerate(np.sort(start + rng.integers(0, 3 * S, 3))):
            events.append({"event_id": f"u{user}-{i}", "user": user, "value": float(rng.integers(-5, 6)),
                           "category": int(rng.integers(0, 4)), "ts": int(t) / 1e6})
    events.sort(key=lambda e: e["ts"])  # type: ignore[arg-type, return-value]
    log = EventLog(tmp_path / "log", SCHEMA)
    view = AggregationView("agg", (USER,), EventLogSource(log), AGGREGATIONS, ttl="10s")
    store = FeatureStore(SqliteOnlineStore(tmp_path / "online.db"), views=[view])
    stream = EmbeddedStream()
    stream.publish(events)
    Ingestor(log).consume(stream, "ingest", "i1", block_ms=10)
    processor = store.stream_processor(["agg"])
    aggregator = processor.aggregators[0]
    aggregator.compact_min = 64
    most = 0
    for start in range(0, len(events), 50):
        processor.process_records(events[start:start + 50])
        most = max(most, aggregator.n_keys)
    assert aggregator.generation > 10
    assert most < 500  # ~130 users are active within any 10 s; without the ttl all 3,000 stay
    at = int(events[-1]["ts"] * 1e6) + 1  # type: ignore[call-overload]
    offline = _online_equals_offline(store, view, list(range(3000)), at)
    assert offline.column("agg__count_all").to_numpy()[:2800].sum() == 0  # long gone: the ttl empties them
