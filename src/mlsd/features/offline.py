"""The offline store: point-in-time correct training frames from DuckDB over Parquet, streamed in batches.

For every label row (join keys + timestamp):
- a :class:`FeatureView` feature is the latest source row with event time <= label time (ASOF join),
  and only if that row is within the view's TTL; rows sharing an event time resolve to the later
  created time;
- an :class:`AggregationView` feature aggregates the events with time in ``[t - window, t)``: strictly
  before the label, so the label's own event never leaks into its features;
- an :class:`OnDemandView` runs its numpy function on the joined columns, the same code the online path runs.

Nothing is materialised in Python: the SQL result streams out as Arrow record batches, and DuckDB
spills to disk beyond ``memory_limit``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeAlias

import pyarrow as pa
import pyarrow.parquet as pq
from duckdb import DuckDBPyConnection

from mlsd.core.duck import connect, sql_str
from mlsd.core.errors import DefinitionError
from mlsd.features.definitions import (
    Aggregation,
    AggregationView,
    AnyView,
    FeatureView,
    OnDemandView,
    input_column,
)

LabelInput: TypeAlias = pa.Table | str | os.PathLike[str]


def output_column(view: str, feature: str) -> str:
    """Name of a feature's column in training frames and online reads: ``view__feature``."""
    return f"{view}__{feature}"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _feature_view_cte(view: FeatureView) -> str:
    keys = ", ".join(_q(k) for k in view.join_keys)
    features = ", ".join(_q(f) for f in view.feature_names)
    ts = _q(view.source.timestamp_field)
    body = f"SELECT {keys}, epoch_us({ts}) AS __t, {features} FROM {view.source.relation_sql()}"
    created = view.source.created_timestamp_field
    if created is not None:
        body += f" QUALIFY row_number() OVER (PARTITION BY {keys}, {ts} ORDER BY {_q(created)} DESC) = 1"
    return body


def _frame(window_us: int | None) -> str:
    lower = "UNBOUNDED PRECEDING" if window_us is None else f"{window_us} PRECEDING"
    return f"RANGE BETWEEN {lower} AND 1 PRECEDING"


def _aggregate_sql(agg: Aggregation, window: str) -> str:
    col = _q(agg.column) if agg.column else None
    over = f"OVER {window}"
    match agg.function:
        case "count":
            return f"count(__e) {over}"
        case "sum":
            return f"coalesce(sum({col}) {over}, 0)::DOUBLE"
        case "mean":
            return f"avg({col}) {over}"
        case "distinct_count":
            return f"count(DISTINCT {col}) {over}"
        case "last":
            return f"arg_max({col}, CASE WHEN __e = 1 THEN struct_pack(t := __t, id := event_id) END) {over}"
        case "nth_last":
            # arg_max(.., n) lists the n latest values, latest first; shorter histories give NULL.
            return (f"list_extract(arg_max({col}, CASE WHEN __e = 1 THEN struct_pack(t := __t, id := event_id) END, "
                    f"{agg.n}) {over}, {agg.n})")
        case "time_since_last":
            return f"(__t - max(CASE WHEN __e = 1 THEN __t END) {over}) / 1e6"
    raise DefinitionError(f"unknown aggregation {agg.function!r}")


def _aggregation_view_cte(view: AggregationView, labels: str, label_ts: str) -> str:
    """Aggregates evaluated at each distinct (keys, label time), by window functions over events ∪ labels."""
    keys = [_q(k) for k in view.join_keys]
    key_list = ", ".join(keys)
    columns = sorted({a.column for a in view.aggregations if a.column is not None})
    event_cols = ", ".join([*(_q(c) for c in columns), "event_id"])
    null_cols = ", ".join([*(f"NULL AS {_q(c)}" for c in columns), "NULL AS event_id"])
    ts = _q(view.source.timestamp_field)
    windows: dict[str, str] = {}
    selects = []
    for agg in view.aggregations:
        frame = _frame(view.window_us(agg))
        name = windows.setdefault(frame, f"w{len(windows)}")
        selects.append(f"{_aggregate_sql(agg, name)} AS {_q(agg.feature_name)}")
    window_defs = ", ".join(f"{n} AS (PARTITION BY {key_list} ORDER BY __t {f})" for f, n in windows.items())
    return (
        f"SELECT {key_list}, __t, {', '.join(selects)} FROM ("
        f" SELECT {key_list}, epoch_us({ts}) AS __t, 1 AS __e, {event_cols} FROM {view.source.relation_sql()}"
        f" UNION ALL"
        f" SELECT DISTINCT {key_list}, epoch_us({_q(label_ts)}) AS __t, NULL AS __e, {null_cols} FROM {labels}"
        f") WINDOW {window_defs} QUALIFY __e IS NULL"
    )


class OfflineStore:
    """Builds point-in-time training frames; see the module docstring for the exact semantics."""

    def __init__(self, *, memory_limit: str | None = "2GB", threads: int | None = None) -> None:
        self.memory_limit = memory_limit
        self.threads = threads

    def sql(self, views: Sequence[AnyView], label_columns: Sequence[str], *, labels: str = "__labels",
            timestamp_field: str = "event_timestamp") -> str:
        """The query that joins ``views`` onto the label relation named ``labels``."""
        ctes = [f"__l AS (SELECT *, epoch_us({_q(timestamp_field)}) AS __lt FROM {labels})"]
        joins, outputs = [], [f"__l.{_q(c)}" for c in label_columns]
        for i, view in enumerate(v for v in views if not isinstance(v, OnDemandView)):
            alias = f"__v{i}"
            missing = [k for k in view.join_keys if k not in label_columns]
            if missing:
                raise DefinitionError(f"labels lack join keys {missing} of view {view.name!r}")
            keys = " AND ".join(f"__l.{_q(k)} = {alias}.{_q(k)}" for k in view.join_keys)
            if isinstance(view, FeatureView):
                ctes.append(f"{alias} AS ({_feature_view_cte(view)})")
                joins.append(f"ASOF LEFT JOIN {alias} ON {keys} AND __l.__lt >= {alias}.__t")
                ttl = None if view.ttl is None else int(view.ttl.total_seconds() * 1_000_000)
                for feature in view.features:
                    name = feature.name
                    value = f"{alias}.{_q(name)}"
                    if feature.width > 1:  # Parquet keeps no list size: read back as the fixed-size vector
                        value = f"CAST({value} AS FLOAT[{feature.width}])"
                    if ttl is not None:
                        value = f"CASE WHEN {alias}.__t >= __l.__lt - {ttl} THEN {value} END"
                    outputs.append(f"{value} AS {_q(output_column(view.name, name))}")
            else:
                ctes.append(f"{alias} AS ({_aggregation_view_cte(view, labels, timestamp_field)})")
                joins.append(f"LEFT JOIN {alias} ON {keys} AND __l.__lt = {alias}.__t")
                outputs += [f"{alias}.{_q(n)} AS {_q(output_column(view.name, n))}" for n in view.feature_names]
        return f"WITH {', '.join(ctes)} SELECT {', '.join(outputs)} FROM __l {' '.join(joins)}"

    def historical_features(self, labels: LabelInput, views: Sequence[AnyView], *,
                            timestamp_field: str = "event_timestamp",
                            batch_rows: int = 262_144) -> pa.RecordBatchReader:
        """Stream the training frame: the label columns, then ``view__feature`` per feature, in batches.

        Row order is not the label order (join order is the engine's); keep an id column to re-align.
        """
        con = connect(memory_limit=self.memory_limit, threads=self.threads)
        if isinstance(labels, pa.Table):
            con.register("__labels", labels)
            relation, columns = "__labels", labels.column_names
        else:
            relation = f"read_parquet({sql_str(Path(labels))})"
            columns = pq.read_schema(labels).names
        if timestamp_field not in columns:
            raise DefinitionError(f"labels have no timestamp column {timestamp_field!r} (columns: {columns})")
        query = self.sql(views, columns, labels=relation, timestamp_field=timestamp_field)
        reader = con.sql(query).to_arrow_reader(batch_rows)
        on_demand = [v for v in views if isinstance(v, OnDemandView)]
        if not on_demand:
            return owning_reader(reader, con)
        schema = reader.schema
        for view in on_demand:
            for feature in view.outputs:
                schema = schema.append(pa.field(output_column(view.name, feature.name), pa.float64()))
        return pa.RecordBatchReader.from_batches(schema, _with_on_demand(reader, on_demand, con))

    def to_table(self, labels: LabelInput, views: Sequence[AnyView], **kwargs: object) -> pa.Table:
        """The whole training frame in memory (convenience for small frames and tests)."""
        return self.historical_features(labels, views, **kwargs).read_all()  # type: ignore[arg-type]

    def to_parquet(self, labels: LabelInput, views: Sequence[AnyView], path: str | os.PathLike[str],
                   **kwargs: object) -> int:
        """Write the training frame to Parquet batch by batch; returns the row count."""
        reader = self.historical_features(labels, views, **kwargs)  # type: ignore[arg-type]
        rows = 0
        with pq.ParquetWriter(path, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows


def on_demand_columns(batch: pa.RecordBatch | pa.Table, view: OnDemandView) -> dict[str, pa.Array]:
    """Run an on-demand view on a frame (inputs by request name or ``view__feature`` column)."""
    columns = {input_column(n): batch.column(input_column(n)).to_numpy(zero_copy_only=False) for n in view.inputs}
    computed = view.compute(columns)
    return {output_column(view.name, k): pa.array(v) for k, v in computed.items()}


def _with_on_demand(reader: pa.RecordBatchReader, views: list[OnDemandView],
                    con: DuckDBPyConnection) -> Iterator[pa.RecordBatch]:
    try:
        for batch in reader:
            arrays, names = list(batch.columns), list(batch.schema.names)
            for view in views:
                for name, array in on_demand_columns(batch, view).items():
                    arrays.append(array)
                    names.append(name)
            yield pa.RecordBatch.from_arrays(arrays, names=names)
    finally:
        con.close()


def owning_reader(reader: pa.RecordBatchReader, con: DuckDBPyConnection) -> pa.RecordBatchReader:
    """A reader that keeps the DuckDB connection open until it is consumed, then closes it."""

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        finally:
            con.close()

    return pa.RecordBatchReader.from_batches(reader.schema, batches())
