"""Point-in-time join: mlsd vs one raw DuckDB ASOF LEFT JOIN (the floor) vs Feast 0.67 (DuckDB offline store).

    python benchmarks/pit_join.py --entity-rows 1000000 --feature-rows 2000000

Label rows and feature rows (50 float32 features) have timestamps spread over 30 days; every engine
runs in its own process, so each peak RSS is its own. All three read the same Parquet files and
return the same rows; ``rows_match`` compares mlsd's and Feast's values on every row.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, peak_rss_gb, run_child

FEATURES = 50
DAYS = 30
TTL = timedelta(days=7)
START_US = 1_700_000_000_000_000


def generate(directory: Path, entity_rows: int, feature_rows: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    entities = max(1, feature_rows // 20)
    span = DAYS * 86_400 * 1_000_000
    ts = pa.timestamp("us", tz="UTC")
    columns: dict[str, pa.Array] = {
        "entity_id": pa.array(rng.integers(0, entities, feature_rows)),
        "event_timestamp": pa.array(START_US + rng.integers(0, span, feature_rows)).cast(ts),
    }
    for i in range(FEATURES):
        columns[f"f{i}"] = pa.array(rng.random(feature_rows, dtype=np.float32))
    pq.write_table(pa.table(columns), directory / "features.parquet", row_group_size=256_000)
    pq.write_table(pa.table({
        "row_id": pa.array(np.arange(entity_rows)),
        "entity_id": pa.array(rng.integers(0, entities, entity_rows)),
        "event_timestamp": pa.array(START_US + rng.integers(0, span, entity_rows)).cast(ts),
    }), directory / "labels.parquet")


def _sample_out(table: pa.Table, directory: Path, engine: str) -> None:
    """Keep (row_id, f0, f49) sorted by row id for the cross-engine comparison (outside the timing)."""
    keep = table.select(["row_id", "f0", f"f{FEATURES - 1}"]).sort_by("row_id")
    pq.write_table(keep, directory / f"out_{engine}.parquet")


def run_mlsd(directory: Path) -> dict[str, float]:
    from mlsd.features import Entity, Feature, FeatureView, OfflineStore, TableSource

    view = FeatureView("fv", (Entity("entity", ("entity_id",)),), TableSource(str(directory / "features.parquet")),
                       tuple(Feature(f"f{i}") for i in range(FEATURES)), ttl=TTL)
    started = time.perf_counter()
    reader = OfflineStore(memory_limit="1GB").historical_features(str(directory / "labels.parquet"), [view])
    table = reader.read_all()
    seconds = time.perf_counter() - started
    rss = peak_rss_gb()
    table = table.rename_columns([c.removeprefix("fv__") for c in table.column_names])
    _sample_out(table, directory, "mlsd")
    return {"seconds": seconds, "rows": table.num_rows, "peak_rss_gb": rss}


def run_floor(directory: Path) -> dict[str, float]:
    import duckdb

    con = duckdb.connect()
    features = ", ".join(f"f.f{i}" for i in range(FEATURES))
    started = time.perf_counter()
    table = con.sql(
        f"SELECT l.row_id, l.entity_id, l.event_timestamp, {features} "
        f"FROM read_parquet('{directory / 'labels.parquet'}') l "
        f"ASOF LEFT JOIN read_parquet('{directory / 'features.parquet'}') f "
        f"ON l.entity_id = f.entity_id AND l.event_timestamp >= f.event_timestamp").to_arrow_table()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": table.num_rows, "peak_rss_gb": peak_rss_gb()}


def run_feast(directory: Path) -> dict[str, float]:
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource
    from feast.repo_config import RepoConfig
    from feast.types import Float32

    repo = directory / "feast_repo"
    repo.mkdir(exist_ok=True)
    config = RepoConfig(project="bench", registry=str(repo / "registry.db"), provider="local",
                        offline_store={"type": "duckdb"}, online_store={"type": "sqlite", "path": str(repo / "o.db")},
                        entity_key_serialization_version=3)
    store = FeatureStore(config=config)
    entity = Entity(name="entity", join_keys=["entity_id"])
    source = FileSource(path=str(directory / "features.parquet"), timestamp_field="event_timestamp")
    view = FeatureView(name="fv", entities=[entity], ttl=TTL, source=source,
                       schema=[Field(name=f"f{i}", dtype=Float32) for i in range(FEATURES)])
    store.apply([entity, view])
    labels = pq.read_table(directory / "labels.parquet").to_pandas()
    started = time.perf_counter()
    frame = store.get_historical_features(entity_df=labels, features=[f"fv:f{i}" for i in range(FEATURES)]).to_df()
    seconds = time.perf_counter() - started
    rss = peak_rss_gb()
    _sample_out(pa.Table.from_pandas(frame, preserve_index=False), directory, "feast")
    return {"seconds": seconds, "rows": len(frame), "peak_rss_gb": rss}


def rows_match(directory: Path) -> bool:
    a = pq.read_table(directory / "out_mlsd.parquet")
    b = pq.read_table(directory / "out_feast.parquet")
    if a.num_rows != b.num_rows or a.column("row_id") != b.column("row_id"):
        return False
    for name in a.column_names[1:]:
        x = pc.fill_null(pc.cast(a.column(name), pa.float64()), -1.0).to_numpy()
        y = pc.fill_null(pc.cast(b.column(name), pa.float64()), -1.0).to_numpy()
        if not np.array_equal(x, y):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entity-rows", type=int, default=100_000)
    parser.add_argument("--feature-rows", type=int, default=200_000)
    parser.add_argument("--skip-feast", action="store_true")
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:  # child process: run one engine, print its JSON
        import json

        runner = {"mlsd": run_mlsd, "floor": run_floor, "feast": run_feast}[args.engine]
        print(json.dumps(runner(Path(args.dir))))
        return
    with tempfile.TemporaryDirectory(prefix="pit-bench-") as tmp:
        directory = Path(tmp)
        generate(directory, args.entity_rows, args.feature_rows)
        script = str(Path(__file__).resolve())
        floor = run_child(script, "--engine", "floor", "--dir", tmp)
        mlsd = run_child(script, "--engine", "mlsd", "--dir", tmp)
        result = {"entity_rows": args.entity_rows, "feature_rows": args.feature_rows, "features": FEATURES,
                  "mlsd_s": round(mlsd["seconds"], 3), "floor_s": round(floor["seconds"], 3),
                  "mlsd_vs_floor": round(mlsd["seconds"] / floor["seconds"], 3),
                  "mlsd_peak_rss_gb": round(mlsd["peak_rss_gb"], 3),
                  "floor_peak_rss_gb": round(floor["peak_rss_gb"], 3)}
        assert mlsd["rows"] == floor["rows"] == args.entity_rows
        if not args.skip_feast:
            feast = run_child(script, "--engine", "feast", "--dir", tmp)
            result |= {"feast_s": round(feast["seconds"], 3), "feast_peak_rss_gb": round(feast["peak_rss_gb"], 3),
                       "feast_vs_mlsd": round(feast["seconds"] / mlsd["seconds"], 1),
                       "rows_match": rows_match(directory)}
        emit("pit_join", result)


if __name__ == "__main__":
    main()
