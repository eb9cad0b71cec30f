"""Online reads of 50 features for 1 and 100 entities: mlsd (SQLite, Redis) vs Feast 0.67 (SQLite, Redis).

    python benchmarks/online_read.py [--reads 1000] [--entities 10000]

Each store holds the same materialized values; each configuration reads ``--reads`` times (batches of
random entities, same seed), and p50/p99 latencies are of whole calls returning feature columns.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, percentiles_ms

FEATURES = 50
REDIS = "redis://127.0.0.1:6379/13"
FEAST_REDIS_DB = 14  # apart from mlsd's database: each setup flushes its own
NOW_US = time.time_ns() // 1000  # values must be inside the TTL when read


def write_source(path: Path, entities: int) -> None:
    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {
        "entity_id": np.arange(entities, dtype=np.int64),
        "event_timestamp": pa.array(np.full(entities, NOW_US - 3_600_000_000)).cast(pa.timestamp("us", "UTC")),
    }
    for i in range(FEATURES):
        columns[f"f{i}"] = rng.random(entities, dtype=np.float32)
    pq.write_table(pa.table(columns), path)


def time_reads(read: Any, entities: int, batch: int, reads: int) -> list[float]:
    rng = np.random.default_rng(batch)
    batches = [rng.integers(0, entities, batch).tolist() for _ in range(reads)]
    for keys in batches[:20]:  # warm-up
        read(keys)
    seconds = []
    for keys in batches:
        started = time.perf_counter()
        read(keys)
        seconds.append(time.perf_counter() - started)
    return seconds


def mlsd_reader(backend: str, source: Path, tmp: Path) -> Any:
    import redis as redis_client

    from mlsd.features import (
        Entity,
        Feature,
        FeatureStore,
        FeatureView,
        RedisOnlineStore,
        SqliteOnlineStore,
        TableSource,
    )

    if backend == "sqlite":
        online: Any = SqliteOnlineStore(tmp / "mlsd.db")
    else:
        redis_client.Redis.from_url(REDIS).flushdb()
        online = RedisOnlineStore(REDIS, namespace="bench")
    view = FeatureView("fv", (Entity("entity", ("entity_id",)),), TableSource(str(source)),
                       tuple(Feature(f"f{i}") for i in range(FEATURES)), ttl=timedelta(days=1))
    store = FeatureStore(online, views=[view])
    store.materialize(["fv"], end_us=NOW_US)
    return lambda keys: store.online_features(["fv"], {"entity_id": keys})


def feast_reader(backend: str, source: Path, tmp: Path) -> Any:
    import redis as redis_client
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource
    from feast.repo_config import RepoConfig
    from feast.types import Float32

    repo = tmp / f"feast_{backend}"
    repo.mkdir()
    if backend == "sqlite":
        online: dict[str, Any] = {"type": "sqlite", "path": str(repo / "online.db")}
    else:
        redis_client.Redis(db=FEAST_REDIS_DB).flushdb()
        online = {"type": "redis", "connection_string": f"127.0.0.1:6379,db={FEAST_REDIS_DB}"}
    config = RepoConfig(project="bench", registry=str(repo / "registry.db"), provider="local",
                        offline_store={"type": "duckdb"}, online_store=online, entity_key_serialization_version=3)
    store = FeatureStore(config=config)
    entity = Entity(name="entity", join_keys=["entity_id"])
    view = FeatureView(name="fv", entities=[entity], ttl=timedelta(days=1),
                       source=FileSource(path=str(source), timestamp_field="event_timestamp"),
                       schema=[Field(name=f"f{i}", dtype=Float32) for i in range(FEATURES)])
    store.apply([entity, view])
    store.write_to_online_store("fv", pq.read_table(source).to_pandas())
    refs = [f"fv:f{i}" for i in range(FEATURES)]
    return lambda keys: store.get_online_features(features=refs, entity_rows=[{"entity_id": k} for k in keys]).to_dict()


def check_same_values(mlsd: Any, feast: Any) -> bool:
    keys = [3, 17, 256]
    ours = mlsd(keys)
    theirs = feast(keys)
    return all(np.allclose(ours[f"fv__f{i}"], np.asarray(theirs[f"f{i}"], dtype=np.float64)) for i in range(FEATURES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=1000)
    parser.add_argument("--feast-reads", type=int, default=1000)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--skip-feast", action="store_true")
    args = parser.parse_args()
    result: dict[str, Any] = {"features": FEATURES, "reads": args.reads, "entities": args.entities}
    with tempfile.TemporaryDirectory(prefix="online-bench-") as name:
        tmp = Path(name)
        source = tmp / "features.parquet"
        write_source(source, args.entities)
        engines = [("sqlite", mlsd_reader, "sqlite"), ("redis", mlsd_reader, "redis")]
        if not args.skip_feast:
            engines += [("feast_sqlite", feast_reader, "sqlite"), ("feast_redis", feast_reader, "redis")]
        readers = {}
        for label, factory, backend in engines:
            read = factory(backend, source, tmp)
            readers[label] = read
            reads = args.feast_reads if label.startswith("feast") else args.reads
            for batch in (1, 100):
                result |= percentiles_ms(time_reads(read, args.entities, batch, reads), f"{label}_b{batch}")
            if label == "feast_redis":
                result["values_match_feast"] = check_same_values(readers["redis"], read)
    emit("online_read", result)


if __name__ == "__main__":
    main()
