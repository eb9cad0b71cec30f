"""Point-in-time training frames on Ray: the offline store's join, partitioned by entity-key hash.

:class:`RayOfflineStore` is a drop-in :class:`~mlsd.features.OfflineStore` (``FeatureStore(online,
RayOfflineStore())``): the same SQL, the same semantics, the same columns, computed in two stages of
Ray tasks, each a single-threaded DuckDB with its own memory limit:

1. **join**, one task per (view, bucket): the label rows and the view's source rows whose join keys
   hash to the bucket (``hash(keys) % buckets``) are joined point in time by the embedded engine's
   own query; the result (a row id + the view's features) is written sorted by row id. Every task
   scans its inputs and keeps its bucket (Parquet scans push the filter down), rather than a shuffle
   through the object store: on one machine re-scanning costs less than moving every row twice, and
   on a cluster the inputs sit on storage every node reads.
2. **assemble**, one task per range of label rows: the label rows and every view's features for
   that range, joined on the row id, on-demand views computed, written as a Parquet shard.

Views keyed by different entities join in their own buckets, so any set of views works. Shards come
back in label order (the embedded engine's order is the join's). Intermediate files live in
``work_dir``, which every node of a multi-node cluster must see (a shared disk); they are removed
once the frame is read. Join keys must have the same type in the labels and the sources (keys are
hashed as text, so ``1`` and ``1.0`` land in different buckets).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.parquet as pq

from mlsd.core.duck import connect, sql_paths, sql_str
from mlsd.core.errors import DefinitionError
from mlsd.features.definitions import AggregationView, AnyView, FeatureView, OnDemandView
from mlsd.features.offline import LabelInput, OfflineStore, on_demand_columns, output_column, owning_reader
from mlsd.scale.cluster import ensure_ray

ROW = "__row"
JoinedView: TypeAlias = FeatureView | AggregationView


@dataclasses.dataclass(frozen=True)
class _SqlSource:
    """A view's source as the SQL relation the driver resolved (files named, nothing unpicklable)."""

    relation: str
    timestamp_field: str
    created_timestamp_field: str | None = None

    def relation_sql(self) -> str:
        return self.relation


def _with_source(view: JoinedView, source: _SqlSource) -> JoinedView:
    """A copy of ``view`` reading ``source``; the definition was validated on the driver, so its
    checks (an aggregation view's against its event log's schema) are not re-run on the copy."""
    copied = copy.copy(view)
    object.__setattr__(copied, "source", source)
    return copied


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bucket_sql(keys: Sequence[str], buckets: int) -> str:
    return f"hash({', '.join(f'CAST({_q(k)} AS VARCHAR)' for k in keys)}) % {buckets}"


@dataclasses.dataclass(frozen=True)
class _ViewPart:
    """What the assemble stage reads of one view: its joined files and the columns they hold."""

    paths: tuple[str, ...]
    columns: tuple[tuple[str, int], ...]  # (output column, width)


def _join_bucket(view: JoinedView, labels_path: str, timestamp_field: str, bucket: int, buckets: int,
                 out_path: str, memory_limit: str | None) -> dict[str, float]:
    """Stage 1: one view's point-in-time join for the label and source rows of one key bucket."""
    keys = list(view.join_keys)
    where = f"{_bucket_sql(keys, buckets)} = {bucket}"
    label_columns = [*keys, timestamp_field, ROW]
    labels = (f"(SELECT {', '.join(_q(c) for c in label_columns)} FROM read_parquet({sql_str(labels_path)}) "
              f"WHERE {where})")
    source: Any = view.source  # the driver's _SqlSource (_with_source)
    bucketed = _with_source(view, _SqlSource(f"(SELECT * FROM {source.relation_sql()} WHERE {where})",
                                             source.timestamp_field, source.created_timestamp_field))
    query = OfflineStore().sql([bucketed], label_columns, labels=labels, timestamp_field=timestamp_field)
    columns = ", ".join(_q(output_column(view.name, f)) for f in view.feature_names)
    con = connect(memory_limit=memory_limit, threads=1)
    # The bucket filter makes DuckDB under-estimate the labels and plan the ASOF join as a nested loop
    # (20x slower at 50k labels per bucket); the threshold 0 keeps the ASOF operator.
    con.execute("SET asof_loop_join_threshold = 0")
    try:
        con.execute(f"COPY (SELECT {ROW}, {columns} FROM ({query}) ORDER BY {ROW}) TO {sql_str(out_path)} "
                    "(FORMAT parquet)")
        rows = con.execute(f"SELECT count(*) FROM read_parquet({sql_str(out_path)})").fetchone()
    finally:
        con.close()
    return _task_stats(int(rows[0]) if rows else 0)


def _task_stats(rows: int) -> dict[str, float]:
    """What a task reports: its rows and its worker process's peak resident memory (GB) so far."""
    return {"rows": rows, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9}


def _assemble(labels_path: str, label_columns: Sequence[str], lo: int, hi: int, parts: Sequence[_ViewPart],
              on_demand: Sequence[OnDemandView], out_path: str, memory_limit: str | None) -> dict[str, float]:
    """Stage 2: label rows ``[lo, hi)`` with every view's features, in row order, as one shard."""
    in_range = f"WHERE {ROW} >= {lo} AND {ROW} < {hi}"
    outputs = [f"__l.{_q(c)}" for c in label_columns]
    joins = []
    for i, part in enumerate(parts):
        alias = f"__v{i}"
        joins.append(f"LEFT JOIN (SELECT * FROM read_parquet({sql_paths(list(part.paths))}) {in_range}) {alias} "
                     f"ON __l.{ROW} = {alias}.{ROW}")
        for column, width in part.columns:
            # Parquet keeps no list size: vectors come back as the fixed-size type the embedded engine gives
            value = f"{alias}.{_q(column)}" if width == 1 else f"CAST({alias}.{_q(column)} AS FLOAT[{width}])"
            outputs.append(f"{value} AS {_q(column)}")
    query = (f"SELECT {', '.join(outputs)} FROM (SELECT * FROM read_parquet({sql_str(labels_path)}) {in_range}) __l "
             f"{' '.join(joins)} ORDER BY __l.{ROW}")
    con = connect(memory_limit=memory_limit, threads=1)
    try:
        frame = con.sql(query).to_arrow_table()
        for view in on_demand:
            for name, array in on_demand_columns(frame, view).items():
                frame = frame.append_column(name, array)
        # DuckDB writes the shard: pyarrow 25 cannot read back a nullable fixed-size list it wrote
        con.register("__frame", frame)
        con.execute(f"COPY __frame TO {sql_str(out_path)} (FORMAT parquet)")
    finally:
        con.close()
    return _task_stats(frame.num_rows)


def _read_shards(paths: Sequence[Path], vectors: dict[str, int], batch_rows: int) -> pa.RecordBatchReader:
    """Shards as one reader, through DuckDB, vectors cast back to their fixed size."""
    replace = ", ".join(f"CAST({_q(c)} AS FLOAT[{w}]) AS {_q(c)}" for c, w in vectors.items())
    select = f"SELECT * REPLACE ({replace})" if replace else "SELECT *"
    con = connect(threads=1)
    reader = con.sql(f"{select} FROM read_parquet({sql_paths([str(p) for p in paths])})").to_arrow_reader(batch_rows)
    return owning_reader(reader, con)


class RayOfflineStore(OfflineStore):
    """The offline store's point-in-time joins as Ray tasks over key-hash buckets (module docstring).

    ``buckets`` defaults to the cluster's CPUs (each join task scans its inputs: fewer buckets, fewer
    scans), ``shard_rows`` (label rows per output shard) to 250,000; ``memory_limit`` bounds each
    task's DuckDB (it spills beyond it).
    """

    def __init__(self, *, buckets: int | None = None, shard_rows: int = 250_000, memory_limit: str | None = "1GB",
                 work_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(memory_limit=memory_limit, threads=1)
        if buckets is not None and buckets < 1:
            raise DefinitionError(f"buckets must be at least 1, got {buckets}")
        if shard_rows < 1:
            raise DefinitionError(f"shard_rows must be at least 1, got {shard_rows}")
        self.buckets, self.shard_rows, self.work_dir = buckets, shard_rows, work_dir
        self.last_run: dict[str, float] = {}  # the last build's tasks, seconds and worker peak memory

    def historical_features(self, labels: LabelInput, views: Sequence[AnyView], *,
                            timestamp_field: str = "event_timestamp",
                            batch_rows: int = 262_144) -> pa.RecordBatchReader:
        """Stream the training frame, shard by shard, in label order."""
        work = Path(tempfile.mkdtemp(prefix="mlsd-ray-join-", dir=self.work_dir))
        try:
            shards = self.write_shards(labels, views, work / "frame", timestamp_field=timestamp_field)
            reader = _read_shards(shards, _vector_widths(views), batch_rows)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from reader
            finally:
                shutil.rmtree(work, ignore_errors=True)

        return pa.RecordBatchReader.from_batches(reader.schema, batches())

    def write_shards(self, labels: LabelInput, views: Sequence[AnyView], directory: str | os.PathLike[str], *,
                     timestamp_field: str = "event_timestamp") -> list[Path]:
        """Compute the frame into Parquet shards under ``directory``, in label order; their paths.

        Read them with DuckDB (vectors are Parquet lists: cast them to ``FLOAT[dim]``) or any Parquet reader.
        """
        ray = ensure_ray()
        started = time.perf_counter()
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="parts-", dir=out))
        try:
            labels_path, columns, n = _numbered_labels(labels, scratch / "labels.parquet")
            if timestamp_field not in columns:
                raise DefinitionError(f"labels have no timestamp column {timestamp_field!r} (columns: {columns})")
            joined = [v for v in views if isinstance(v, FeatureView | AggregationView)]
            self.sql(joined, columns, labels="__labels", timestamp_field=timestamp_field)  # checks keys, no I/O
            buckets = self.buckets or max(1, int(ray.cluster_resources().get("CPU", 1)))
            join_task = ray.remote(num_cpus=1)(_join_bucket)
            assemble_task = ray.remote(num_cpus=1)(_assemble)
            pending, parts = [], []
            for i, view in enumerate(joined):
                resolved = _with_source(view, _SqlSource(
                    view.source.relation_sql(), view.source.timestamp_field,
                    getattr(view.source, "created_timestamp_field", None)))
                paths = tuple(str(scratch / f"v{i}-b{b}.parquet") for b in range(buckets))
                pending += [join_task.remote(resolved, labels_path, timestamp_field, b, buckets, p, self.memory_limit)
                            for b, p in enumerate(paths)]
                widths = _vector_widths([view])
                parts.append(_ViewPart(paths, tuple((c, widths.get(c, 1)) for c in
                                                    (output_column(view.name, f) for f in view.feature_names))))
            stats = _get(ray, pending)
            joined_at = time.perf_counter()
            on_demand = [v for v in views if isinstance(v, OnDemandView)]
            shards = [out / f"part-{k:05d}.parquet" for k in range(max(1, math.ceil(n / self.shard_rows)))]
            size = self.shard_rows
            stats += _get(ray, [assemble_task.remote(labels_path, columns, k * size, (k + 1) * size, parts, on_demand,
                                                     str(path), self.memory_limit) for k, path in enumerate(shards)])
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self.last_run = {"buckets": buckets, "shards": len(shards), "tasks": len(stats), "rows": n,
                         "seconds": time.perf_counter() - started, "join_s": joined_at - started,
                         "worker_peak_rss_gb": max(s["peak_rss_gb"] for s in stats)}
        return shards


def _vector_widths(views: Sequence[AnyView]) -> dict[str, int]:
    """Output column -> dimension, for every vector feature of ``views``."""
    return {output_column(v.name, f.name): f.width for v in views if isinstance(v, FeatureView)
            for f in v.features if f.width > 1}


def _numbered_labels(labels: LabelInput, path: Path) -> tuple[str, list[str], int]:
    """The labels with a row id column, as one Parquet file; its path, label columns and row count."""
    if isinstance(labels, pa.Table):
        columns = labels.column_names
        pq.write_table(labels.append_column(ROW, pa.array(range(labels.num_rows), pa.int64())), path)
        return str(path), columns, labels.num_rows
    source = Path(labels)
    if not source.exists():
        raise DefinitionError(f"labels file {source} does not exist")
    columns = pq.read_schema(source).names
    con = connect(threads=1)
    try:
        # row_number() over the file's order: the order the labels were written in
        con.execute(f"COPY (SELECT *, row_number() OVER () - 1 AS {ROW} FROM read_parquet({sql_str(source)})) "
                    f"TO {sql_str(path)} (FORMAT parquet)")
    finally:
        con.close()
    return str(path), columns, pq.ParquetFile(path).metadata.num_rows


def _get(ray: Any, refs: list[Any]) -> list[Any]:
    """Wait for tasks; a task's own exception (a bad definition, a DuckDB error) is re-raised as itself."""
    try:
        return list(ray.get(refs))
    except ray.exceptions.RayTaskError as error:
        cause = error.as_instanceof_cause()
        raise cause from None
