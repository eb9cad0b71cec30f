"""Point-in-time join on Ray vs the embedded engine: same labels, same view, same rows out.

    python benchmarks/ray_pit_join.py --entity-rows 1000000 --feature-rows 2000000

The data is pit_join.py's (50 float32 features over 30 days, 7-day TTL). Each engine runs in its own
process and writes the whole frame to Parquet: the embedded engine streams one file, the Ray engine
writes shards (``RayOfflineStore.write_shards``) from tasks on a local cluster of ``--cpus`` CPUs.
``ray_s`` excludes the cluster's start (``ray_init_s``); ``ray_peak_rss_gb`` is the largest peak of any
process (the driver or a worker). ``rows_match`` compares every row's f0 and f49 by row id.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, peak_rss_gb, run_child
from pit_join import FEATURES, generate

TTL = timedelta(days=7)


def _view(directory: Path):  # type: ignore[no-untyped-def]
    from mlsd.features import Entity, Feature, FeatureView, TableSource

    return FeatureView("fv", (Entity("entity", ("entity_id",)),), TableSource(str(directory / "features.parquet")),
                       tuple(Feature(f"f{i}") for i in range(FEATURES)), ttl=TTL)


def run_embedded(directory: Path) -> dict[str, float]:
    from mlsd.features import OfflineStore

    started = time.perf_counter()
    rows = OfflineStore(memory_limit="2GB").to_parquet(str(directory / "labels.parquet"), [_view(directory)],
                                                       directory / "embedded.parquet")
    return {"seconds": time.perf_counter() - started, "rows": rows, "peak_rss_gb": peak_rss_gb()}


def run_ray(directory: Path, cpus: int) -> dict[str, float]:
    from mlsd.scale.cluster import ensure_ray
    from mlsd.scale.features import RayOfflineStore

    started = time.perf_counter()
    ensure_ray(num_cpus=cpus, object_store_mb=512)
    init_s = time.perf_counter() - started
    store = RayOfflineStore(memory_limit="1GB")
    store.write_shards(str(directory / "labels.parquet"), [_view(directory)], directory / "ray")
    run = store.last_run
    return {"seconds": run["seconds"], "init_s": init_s, "rows": run["rows"], "buckets": run["buckets"],
            "shards": run["shards"], "driver_peak_rss_gb": peak_rss_gb(),
            "worker_peak_rss_gb": run["worker_peak_rss_gb"]}


def rows_match(directory: Path) -> bool:
    import duckdb

    differ = duckdb.connect().execute(
        f"SELECT count(*) FROM read_parquet('{directory / 'embedded.parquet'}') e "
        f"FULL JOIN read_parquet('{directory / 'ray'}/*.parquet') r ON e.row_id = r.row_id "
        f"WHERE e.row_id IS NULL OR r.row_id IS NULL OR e.fv__f0 IS DISTINCT FROM r.fv__f0 "
        f"OR e.fv__f{FEATURES - 1} IS DISTINCT FROM r.fv__f{FEATURES - 1}").fetchone()
    return differ is not None and differ[0] == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entity-rows", type=int, default=1_000_000)
    parser.add_argument("--feature-rows", type=int, default=2_000_000)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:  # child process: one engine (or the data), its JSON on the last line
        if args.engine == "generate":
            generate(Path(args.dir), args.entity_rows, args.feature_rows)
            result = {}
        else:
            result = run_embedded(Path(args.dir)) if args.engine == "embedded" else run_ray(Path(args.dir), args.cpus)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="ray-pit-bench-") as tmp:
        directory = Path(tmp)
        script = str(Path(__file__).resolve())
        # generated in a child too: a child's peak RSS starts from its parent's at fork
        run_child(script, "--engine", "generate", "--dir", tmp, "--entity-rows", str(args.entity_rows),
                  "--feature-rows", str(args.feature_rows))
        embedded = run_child(script, "--engine", "embedded", "--dir", tmp)
        ray = run_child(script, "--engine", "ray", "--dir", tmp, "--cpus", str(args.cpus))
        assert embedded["rows"] == ray["rows"] == args.entity_rows
        emit(f"ray_pit_join_{args.entity_rows}", {
            "entity_rows": args.entity_rows, "feature_rows": args.feature_rows, "features": FEATURES,
            "cpus": args.cpus, "embedded_s": round(embedded["seconds"], 2), "ray_s": round(ray["seconds"], 2),
            "ray_vs_embedded": round(ray["seconds"] / embedded["seconds"], 2), "ray_init_s": round(ray["init_s"], 2),
            "buckets": ray["buckets"], "shards": ray["shards"], "rows_match": rows_match(directory),
            "embedded_peak_rss_gb": round(embedded["peak_rss_gb"], 3),
            "ray_driver_peak_rss_gb": round(ray["driver_peak_rss_gb"], 3),
            "ray_peak_rss_gb": round(max(ray["driver_peak_rss_gb"], ray["worker_peak_rss_gb"]), 3)})


if __name__ == "__main__":
    main()
