"""Stream processor throughput and event->readable freshness, into the SQLite online store.

    python benchmarks/stream_aggregate.py [--events 500000] [--rate 20000] [--seconds 10]

Throughput: pre-published click events (5 entity keys; counts over 10 min / 1 h / 1 day, distinct
apps, time since last click) go through the processor on one thread: validation of the JSON-shaped
payloads, dedup, exact windowed aggregation, and batched online writes. Baseline in the same run: the
same events written to the same online store with no aggregation (one packed row per event), the
floor any processor that writes its results must pay.
Freshness: a separate producer process sends events to Redis Streams at ``--rate`` events/s; the
processor reads them with a consumer group, and for each event the time from send to the commit
that made its aggregates readable is recorded.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit

REDIS = "redis://127.0.0.1:6379/12"
START_S = 1_700_000_000.0


def schema() -> Any:
    from mlsd.events import EventSchema

    return EventSchema("bench_click", {"event_id": pa.string(), "ip": pa.int64(), "app": pa.int64(),
                                       "device": pa.int64(), "os": pa.int64(), "channel": pa.int64(),
                                       "ts": pa.float64(), "sent_us": pa.int64()},
                       timestamp_field="ts", id_field="event_id")


def views(log: Any) -> list[Any]:
    from mlsd.features import Aggregation, AggregationView, Entity, EventLogSource

    source = EventLogSource(log)
    counts = tuple(Aggregation("count", window=w) for w in ("10m", "1h", "1d"))
    return [
        AggregationView("ip", (Entity("ip", ("ip",)),), source, (
            *counts, Aggregation("distinct_count", "app", window="1d"), Aggregation("time_since_last"))),
        AggregationView("ip_app", (Entity("ip_app", ("ip", "app")),), source, counts),
        AggregationView("app_channel", (Entity("app_channel", ("app", "channel")),), source, counts),
    ]


def events(n: int, start: int = 0, seed: int = 0, rate_per_s: float = 2000.0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed + start)
    ip = (rng.zipf(1.4, n) % 100_000).tolist()
    app = (rng.zipf(1.6, n) % 500).tolist()
    os_ = (rng.zipf(1.8, n) % 100).tolist()
    channel = rng.integers(0, 300, n).tolist()
    ts = (START_S + (start + np.arange(n)) / rate_per_s).tolist()
    return [{"event_id": f"e{start + i}", "ip": ip[i], "app": app[i], "device": 1, "os": os_[i],
             "channel": channel[i], "ts": ts[i], "sent_us": 0} for i in range(n)]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def throughput(n: int, tmp: Path) -> dict[str, float]:
    from mlsd.events import EmbeddedStream, EventLog
    from mlsd.features import SqliteOnlineStore, StreamProcessor
    from mlsd.features.online import VectorCodec

    log = EventLog(tmp / "log", schema())
    payloads = events(n)
    stream = EmbeddedStream()
    stream.publish(payloads)
    processor = StreamProcessor(views(log), SqliteOnlineStore(tmp / "online.db"))
    wall, cpu = time.perf_counter(), cpu_seconds()
    processor.run(stream, "bench", "c1", batch=20_000, block_ms=0, max_idle_polls=1)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    assert processor.stats.events == n

    # Baseline: the same events, same store, no aggregation: one packed row per event, batched alike.
    store = SqliteOnlineStore(tmp / "baseline.db")
    codec = VectorCodec(3)
    base = time.perf_counter()
    for start in range(0, n, 20_000):
        part = payloads[start:start + 20_000]
        keys = [str(p["ip"]).encode() for p in part]
        values = np.array([[p["app"], p["os"], p["channel"]] for p in part], dtype=np.float64)
        store.write_batch("raw", keys, codec.encode_rows(np.zeros(len(part), np.int64), values))
    base = time.perf_counter() - base
    return {"events": n, "events_per_s": round(n / wall), "cores_used": round(cpu / wall, 2),
            "events_per_s_per_core": round(n / cpu), "online_writes": processor.stats.writes,
            "baseline_write_only_events_per_s": round(n / base),
            "vs_write_only_baseline": round((n / wall) / (n / base), 3)}


def produce(rate: float, seconds: float, stream_name: str) -> None:
    from mlsd.events import RedisStream

    stream = RedisStream(stream_name, REDIS)
    per_tick = max(1, int(rate / 100))
    sent = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        batch = events(per_tick, start=sent, rate_per_s=rate)
        now_us = time.time_ns() // 1000
        for event in batch:
            event["sent_us"] = now_us
        stream.publish(batch)
        sent += per_tick
        delay = sent / rate - (time.perf_counter() - started)
        if delay > 0:
            time.sleep(delay)


def freshness(rate: float, seconds: float, tmp: Path) -> dict[str, float]:
    from mlsd.events import EventLog, RedisStream
    from mlsd.features import SqliteOnlineStore, StreamProcessor

    name = f"bench-stream-{time.time_ns()}"
    stream = RedisStream(name, REDIS)
    stream.ensure_group("online")
    log = EventLog(tmp / "log2", schema())
    processor = StreamProcessor(views(log), SqliteOnlineStore(tmp / "fresh.db"))
    lags: list[float] = []

    def on_commit(messages: list[Any]) -> None:
        now_us = time.time_ns() // 1000
        lags.extend((now_us - m.payload["sent_us"]) / 1e6 for m in messages)

    producer = multiprocessing.get_context("spawn").Process(target=produce, args=(rate, seconds, name))
    producer.start()
    deadline = time.monotonic() + seconds + 5
    processor.run(stream, "online", "c1", batch=5000, block_ms=20, on_commit=on_commit,
                  stop=lambda: time.monotonic() > deadline or (not producer.is_alive() and stream.pending("online") == 0
                                                               and len(lags) >= stream.length()))
    producer.join()
    stream.delete()
    values = np.asarray(lags)
    return {"freshness_rate_events_per_s": rate, "freshness_events": len(values),
            "freshness_p50_s": round(float(np.percentile(values, 50)), 4),
            "freshness_p99_s": round(float(np.percentile(values, 99)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as name:
        result = throughput(args.events, Path(name)) | freshness(args.rate, args.seconds, Path(name))
    emit("stream_aggregate", result)


if __name__ == "__main__":
    main()
