"""Point-in-time correctness: the offline store and the stream processor against brute-force references."""

from __future__ import annotations

import math
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlsd.core.timeutil import TIMESTAMP
from mlsd.events import EventLog, EventSchema
from mlsd.features import (
    Aggregation,
    AggregationView,
    Entity,
    EventLogSource,
    Feature,
    FeatureView,
    OfflineStore,
    TableSource,
    WindowedAggregator,
)
from tests.reference import aggregate, latest_row

BASE_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
S = 1_000_000
USER = Entity("user", ("user",))
SCHEMA = EventSchema("ev", {"event_id": pa.string(), "user": pa.int64(), "value": pa.float64(),
                            "category": pa.int64(), "ts": TIMESTAMP}, timestamp_field="ts", id_field="event_id")
AGGREGATIONS = (
    Aggregation("count", window="5s"),
    Aggregation("count"),
    Aggregation("sum", "value", window="10s"),
    Aggregation("mean", "value", window="5s"),
    Aggregation("distinct_count", "category", window="10s"),
    Aggregation("last", "value"),
    Aggregation("last", "value", window="5s", name="last_value_5s"),
    Aggregation("time_since_last"),
    Aggregation("time_since_last", window="10s", name="since_10s"),
    Aggregation("nth_last", "value", n=1),
    Aggregation("nth_last", "value", n=3),
)

seconds = st.integers(min_value=0, max_value=40)
feature_rows = st.lists(st.tuples(st.integers(0, 4), seconds, st.integers(0, 3), st.floats(-1e3, 1e3)),
                        max_size=40)
label_rows = st.lists(st.tuples(st.integers(0, 5), seconds), min_size=1, max_size=30)
# Event times sit on whole seconds or one microsecond before, to probe every window edge.
event_rows = st.lists(st.tuples(st.integers(0, 4), seconds, st.integers(-50, 50), st.integers(0, 3),
                                st.booleans()), max_size=60)


def _labels(rows: list[tuple[int, int]]) -> pa.Table:
    return pa.table({"row": list(range(len(rows))), "user": [r[0] for r in rows],
                     "event_timestamp": pa.array([BASE_US + r[1] * S for r in rows], pa.int64()).cast(TIMESTAMP)})


def _by_row(table: pa.Table) -> dict[int, dict[str, object]]:
    return {r["row"]: r for r in table.to_pylist()}


def _same(expected: float, actual: object) -> bool:
    if actual is None:
        return math.isnan(expected)
    return math.isclose(expected, float(actual), rel_tol=1e-9, abs_tol=1e-6)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=feature_rows, labels=label_rows, ttl_s=st.one_of(st.none(), st.integers(0, 15)))
def test_feature_view_join_matches_brute_force(rows: list[tuple[int, int, int, float]],
                                               labels: list[tuple[int, int]], ttl_s: int | None) -> None:
    check_feature_view_join(OfflineStore(), rows, labels, ttl_s)


def check_feature_view_join(store: OfflineStore, rows: list[tuple[int, int, int, float]],
                            labels: list[tuple[int, int]], ttl_s: int | None) -> None:
    """``store``'s feature-view join against the brute-force latest row (any engine)."""
    # created times are unique per row, so ties on event time have one right answer
    source = [{"key": k, "ts": BASE_US + t * S, "created": BASE_US + (c * 100 + i) * S, "x": x}
              for i, (k, t, c, x) in enumerate(rows)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.parquet"
        pq.write_table(pa.table({
            "user": pa.array([r["key"] for r in source], pa.int64()),
            "event_timestamp": pa.array([r["ts"] for r in source], pa.int64()).cast(TIMESTAMP),
            "created": pa.array([r["created"] for r in source], pa.int64()).cast(TIMESTAMP),
            "x": pa.array([r["x"] for r in source], pa.float64()),
        }), path)
        ttl = None if ttl_s is None else timedelta(seconds=ttl_s)
        view = FeatureView("fv", (USER,), TableSource(str(path), created_timestamp_field="created"),
                           (Feature("x"),), ttl=ttl)
        frame = _by_row(store.to_table(_labels(labels), [view]))
    assert len(frame) == len(labels)
    for i, (key, t) in enumerate(labels):
        best = latest_row(source, key, BASE_US + t * S, None if ttl_s is None else ttl_s * S)
        assert _same(math.nan if best is None else best["x"], frame[i]["fv__x"]), (i, key, t, best)


def _write_events(log: EventLog, events: list[dict[str, object]]) -> None:
    log.append(pa.table({
        "event_id": [e["event_id"] for e in events],
        "user": pa.array([e["key"] for e in events], pa.int64()),
        "value": pa.array([e["value"] for e in events], pa.float64()),
        "category": pa.array([e["category"] for e in events], pa.int64()),
        "ts": pa.array([e["ts"] for e in events], pa.int64()).cast(TIMESTAMP),
    }))


def _events(rows: list[tuple[int, int, int, int, bool]]) -> list[dict[str, object]]:
    return [{"event_id": f"e{i:04d}", "key": k, "ts": BASE_US + t * S - int(early), "value": float(v), "category": c}
            for i, (k, t, v, c, early) in enumerate(rows)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=event_rows, labels=label_rows, ttl_s=st.one_of(st.none(), st.integers(1, 12)))
def test_offline_aggregates_match_brute_force(rows: list[tuple[int, int, int, int, bool]],
                                              labels: list[tuple[int, int]], ttl_s: int | None) -> None:
    check_aggregates(OfflineStore(), rows, labels, ttl_s)


def check_aggregates(store: OfflineStore, rows: list[tuple[int, int, int, int, bool]],
                     labels: list[tuple[int, int]], ttl_s: int | None = None) -> None:
    """``store``'s windowed aggregates against the brute-force reference (any engine); ``ttl_s``: the view's ttl."""
    events = _events(rows)
    with tempfile.TemporaryDirectory() as tmp:
        log = EventLog(tmp, SCHEMA)
        if events:
            _write_events(log, events)
        view = AggregationView("agg", (USER,), EventLogSource(log), AGGREGATIONS,
                               ttl=None if ttl_s is None else timedelta(seconds=ttl_s))
        frame = _by_row(store.to_table(_labels(labels), [view]))
        log.close()
    assert len(frame) == len(labels)
    for i, (key, t) in enumerate(labels):
        for agg in AGGREGATIONS:
            expected = aggregate(events, key, BASE_US + t * S, agg.function, view.window_us(agg), agg.n)
            actual = frame[i][f"agg__{agg.feature_name}"]
            assert _same(expected, actual), (agg.feature_name, key, t, expected, actual)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=event_rows, batch=st.integers(1, 20), ttl_s=st.one_of(st.none(), st.integers(1, 12)))
def test_streaming_aggregates_equal_offline(rows: list[tuple[int, int, int, int, bool]], batch: int,
                                            ttl_s: int | None) -> None:
    """Feed events in time order in micro-batches; before each timestamp t the stream state equals offline at t.

    With a ttl the aggregator compacts at every chance (``compact_min=1``): a forgotten key's aggregates
    are all empty, and the keys it keeps give the offline values."""
    events = sorted(_events(rows), key=lambda e: (e["ts"], e["event_id"]))
    with tempfile.TemporaryDirectory() as tmp:
        log = EventLog(tmp, SCHEMA)
        view = AggregationView("agg", (USER,), EventLogSource(log), AGGREGATIONS,
                               ttl=None if ttl_s is None else timedelta(seconds=ttl_s))
        aggregator = WindowedAggregator(view, compact_min=1)
        checkpoints = sorted({e["ts"] for e in events} | {e["ts"] + w for e in events for w in (5 * S, 10 * S)}
                             | {BASE_US + 60 * S})
        position = 0
        for t in checkpoints:
            aggregator.advance(t - 1)  # the stream has seen everything strictly before t
            keys = np.arange(aggregator.n_keys)
            vectors = aggregator.vectors(keys)
            for index, key in enumerate(aggregator.keys):
                for j, agg in enumerate(AGGREGATIONS):
                    expected = aggregate(events, key, t, agg.function, view.window_us(agg), agg.n)
                    got = vectors[index, j]
                    if agg.function == "time_since_last" and not math.isnan(got):
                        got = (t - got) / 1e6  # the online store keeps the event time; readers subtract
                    assert _same(expected, None if math.isnan(got) else got), (agg.feature_name, key, t)
            for key in {e["key"] for e in events[:position]} - set(aggregator.keys):  # forgotten: nothing left
                assert ttl_s is not None
                for agg in AGGREGATIONS:
                    empty = 0.0 if agg.function in ("count", "sum", "distinct_count") else math.nan
                    value = aggregate(events, key, t, agg.function, view.window_us(agg), agg.n)
                    assert _same(value, None if math.isnan(empty) else empty), (agg.feature_name, key, t)
            aggregator.compact()
            group = [e for e in events[position:] if e["ts"] == t]
            for start in range(0, len(group), batch):
                part = group[start:start + batch]
                aggregator.add(np.array([e["ts"] for e in part], np.int64), [[e["key"] for e in part]],
                               {"value": np.array([e["value"] for e in part]),
                                "category": np.array([e["category"] for e in part])})
            position += len(group)
        log.close()


@settings(max_examples=30, deadline=None)
@given(rows=event_rows, seed=st.integers(0, 1000))
def test_out_of_order_arrival_gives_the_same_state(rows: list[tuple[int, int, int, int, bool]], seed: int) -> None:
    """Late events are placed in their windows exactly: any arrival order ends in the same aggregates."""
    events = _events(rows)
    if not events:
        return
    tmp = tempfile.TemporaryDirectory()
    log = EventLog(tmp.name, SCHEMA)
    view = AggregationView("agg", (USER,), EventLogSource(log), tuple(
        a for a in AGGREGATIONS if a.function not in ("last", "nth_last")))
    states = []
    for order in (sorted(range(len(events)), key=lambda i: events[i]["ts"]),
                  np.random.default_rng(seed).permutation(len(events)).tolist()):
        aggregator = WindowedAggregator(view)
        for start in range(0, len(order), 7):
            part = [events[i] for i in order[start:start + 7]]
            aggregator.add(np.array([e["ts"] for e in part], np.int64), [[e["key"] for e in part]],
                           {"value": np.array([e["value"] for e in part]),
                            "category": np.array([e["category"] for e in part])})
        ordered = np.array([aggregator.key_index[k] for k in sorted(aggregator.key_index)])
        states.append(aggregator.vectors(ordered))
    log.close()
    tmp.cleanup()
    np.testing.assert_allclose(states[0], states[1], rtol=1e-9, atol=1e-6)
