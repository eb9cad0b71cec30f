"""The feature store: one registry of definitions over an offline store and an online store.

Training reads go through :meth:`FeatureStore.training_frame` (point-in-time correct); serving reads
through :meth:`FeatureStore.online_features`; :meth:`FeatureStore.materialize` moves values offline ->
online; :meth:`FeatureStore.stream_processor` keeps aggregation views fresh from a live stream.
On-demand views run the same function on both paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlsd.core.duck import connect
from mlsd.core.errors import DefinitionError
from mlsd.core.timeutil import now_us
from mlsd.features.definitions import AggregationView, AnyView, Feature, FeatureView, OnDemandView, input_column
from mlsd.features.offline import LabelInput, OfflineStore, output_column
from mlsd.features.online.base import OnlineStore, encode_keys
from mlsd.features.online.codec import MISSING_TS, VectorCodec
from mlsd.features.streaming import StreamProcessor

LABEL_TS = "event_timestamp"


@dataclass(frozen=True)
class _OnlineLayout:
    """What a reader needs to turn a view's packed blobs into feature values."""

    codec: VectorCodec
    ttl_us: int | None
    since_columns: tuple[int, ...]
    since_windows_us: tuple[int | None, ...]
    zero_columns: tuple[int, ...] = ()
    starts: tuple[int, ...] = ()  # each feature's first column in the packed row
    widths: tuple[int, ...] = ()  # each feature's columns (a vector feature's dimension)
    columns: tuple[str, ...] = ()  # each feature's output column name (built once: it is per request otherwise)


def _until_key(view: FeatureView | AggregationView) -> str:
    version = view.lineage_version if isinstance(view, FeatureView) else f"v{view.version}"
    return f"materialized_until:{view.name}:{version}"


def _encoder_key(name: str) -> str:
    return f"encoder:{name}"


def _features(view: FeatureView | AggregationView) -> list[Feature]:
    if isinstance(view, FeatureView):
        return list(view.features)
    return [Feature(a.feature_name) for a in view.aggregations]


def _matrix(column: pa.ChunkedArray, width: int) -> np.ndarray:
    """A column as float64 ``(n, width)`` (``(n,)`` for a scalar); a missing vector is a row of NaN."""
    if width == 1:
        return np.asarray(column.to_numpy(zero_copy_only=False), np.float64)
    array = column.combine_chunks()
    matrix = np.full((len(array), width), np.nan)
    valid = ~array.is_null().to_numpy(zero_copy_only=False)
    matrix[valid] = array.flatten().to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, width)
    return matrix


class FeatureStore:
    """Registry of views plus the offline and online stores they are read from."""

    def __init__(self, online: OnlineStore, offline: OfflineStore | None = None,
                 views: Sequence[AnyView] = ()) -> None:
        self.online = online
        self.offline = offline or OfflineStore()
        self.views: dict[str, AnyView] = {}
        self._layouts: dict[str, _OnlineLayout] = {}
        self.apply(*views)

    def apply(self, *views: AnyView) -> None:
        """Register (or replace) views by name."""
        for view in views:
            self.views[view.name] = view
            self._layouts.pop(view.name, None)

    def view(self, name: str) -> AnyView:
        try:
            return self.views[name]
        except KeyError:
            raise DefinitionError(f"unknown feature view {name!r}; registered: {sorted(self.views)}") from None

    # -- offline ----------------------------------------------------------------------------------
    def training_frame(self, labels: LabelInput, view_names: Sequence[str], *,
                       timestamp_field: str = LABEL_TS) -> pa.RecordBatchReader:
        """Point-in-time correct features for each label row, streamed (see :mod:`mlsd.features.offline`)."""
        return self.offline.historical_features(labels, [self.view(n) for n in view_names],
                                                timestamp_field=timestamp_field)

    # -- offline -> online ------------------------------------------------------------------------
    def materialize(self, view_names: Sequence[str] | None = None, *, end_us: int | None = None) -> dict[str, int]:
        """Write each view's latest values as of ``end_us`` to the online store; returns entities written.

        Feature views are incremental: only source rows after the last materialized time are read, so
        running it twice writes nothing new. Aggregation views are evaluated at ``end_us`` for every key.
        """
        end = now_us() if end_us is None else end_us
        written = {}
        for name in view_names or [n for n, v in self.views.items() if not isinstance(v, OnDemandView)]:
            view = self.view(name)
            if isinstance(view, OnDemandView):
                raise DefinitionError(f"on-demand view {name!r} is computed at request time, not materialized")
            meta = _until_key(view)
            if isinstance(view, FeatureView) and view.encoder and \
                    self.online.get_meta(_encoder_key(name)) != view.encoder:
                self.online.delete_view(name)  # another encoder's vectors: none of them may be served now
                self.online.set_meta(_encoder_key(name), view.encoder)
                self._layouts.pop(name, None)
            start = int(self.online.get_meta(meta) or MISSING_TS)
            if isinstance(view, FeatureView) and start >= end:
                written[name] = 0
                continue
            table = self._latest_values(view, start, end)
            keys = encode_keys([table.column(k).to_pylist() for k in view.join_keys])
            values = np.column_stack([_matrix(table.column(f.name), f.width) for f in _features(view)]
                                     ) if table.num_rows else np.zeros((0, 0))
            ts = table.column("__t").to_numpy() if table.num_rows else np.zeros(0, np.int64)
            if table.num_rows:
                self.online.write_batch(name, keys, self._layout(view).codec.encode_rows(ts, values))
            self.online.set_meta(meta, str(end))
            written[name] = table.num_rows
        return written

    def latest_event_us(self, view_names: Sequence[str] | None = None) -> int | None:
        """The newest source event time (µs) over the materializable views: ``mlsd materialize``'s default end."""
        latest = None
        con = connect(memory_limit=self.offline.memory_limit)
        try:
            for name in view_names or [n for n, v in self.views.items() if not isinstance(v, OnDemandView)]:
                view = self.view(name)
                if isinstance(view, OnDemandView):
                    continue
                newest = con.execute(f'SELECT max(epoch_us("{view.source.timestamp_field}")) '
                                     f"FROM {view.source.relation_sql()}").fetchall()[0][0]
                if newest is not None:
                    latest = int(newest) if latest is None else max(latest, int(newest))
        finally:
            con.close()
        return latest

    def materialized_until(self, name: str) -> int | None:
        """Up to which event time (µs) the view was last materialized to the online store, or None."""
        view = self.view(name)
        if isinstance(view, OnDemandView):
            return None
        value = self.online.get_meta(_until_key(view))
        return None if value is None else int(value)

    def _latest_values(self, view: FeatureView | AggregationView, start: int, end: int) -> pa.Table:
        con = connect(memory_limit=self.offline.memory_limit)
        keys = ", ".join(f'"{k}"' for k in view.join_keys)
        if isinstance(view, FeatureView):
            created = view.source.created_timestamp_field
            order = "__t DESC" + (f', "{created}" DESC' if created else "")
            features = ", ".join(f'"{f}"' for f in view.feature_names)
            sql = (f"SELECT {keys}, epoch_us(\"{view.source.timestamp_field}\") AS __t, {features} "
                   f"FROM {view.source.relation_sql()} WHERE __t > {start} AND __t <= {end} "
                   f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1")
            result = con.sql(sql).to_arrow_table()
        else:
            # Evaluate the aggregates just after `end`, so events at `end` itself count (as online).
            at = end + 1
            points = con.sql(f"SELECT DISTINCT {keys}, make_timestamptz({at}) AS {LABEL_TS} "
                             f"FROM {view.source.relation_sql()} "
                             f"WHERE epoch_us(\"{view.source.timestamp_field}\") <= {end}").to_arrow_table()
            frame = self.offline.to_table(points, [view])
            renamed = {output_column(view.name, f): f for f in view.feature_names}
            result = frame.rename_columns([renamed.get(c, c) for c in frame.column_names])
            since = [a.feature_name for a in view.aggregations if a.function == "time_since_last"]
            for name in since:  # online stores keep the event time; readers subtract it from theirs
                seconds = result.column(name)
                event_us = pc.subtract(pa.scalar(float(at)), pc.multiply(seconds, pa.scalar(1e6)))
                result = result.set_column(result.schema.get_field_index(name), name, event_us)
            result = result.append_column("__t", pa.array(np.full(result.num_rows, end, np.int64)))
        con.close()
        return result

    # -- online -----------------------------------------------------------------------------------
    def _layout(self, view: FeatureView | AggregationView) -> _OnlineLayout:
        layout = self._layouts.get(view.name)
        if layout is None:
            since: list[int] = []
            windows: list[int | None] = []
            zero: list[int] = []
            ttl = None
            if isinstance(view, AggregationView):
                # An entity with no events yet has count/sum/distinct 0 offline: the same online.
                zero = [j for j, a in enumerate(view.aggregations) if a.function in ("count", "sum", "distinct_count")]
                for j, agg in enumerate(view.aggregations):
                    if agg.function == "time_since_last":
                        since.append(j)
                        windows.append(view.window_us(agg))
            else:
                if view.ttl is not None:
                    ttl = int(view.ttl.total_seconds() * 1_000_000)
                stored = self.online.get_meta(_encoder_key(view.name)) if view.encoder else None
                if stored not in (None, view.encoder):
                    raise DefinitionError(f"view {view.name!r} holds vectors of encoder {stored}, its definition "
                                          f"expects {view.encoder}: materialize it again")
            widths = [f.width for f in _features(view)]
            layout = _OnlineLayout(VectorCodec(sum(widths)), ttl, tuple(since), tuple(windows), tuple(zero),
                                   tuple(np.cumsum([0, *widths[:-1]]).tolist()), tuple(widths),
                                   tuple(output_column(view.name, f) for f in view.feature_names))
            self._layouts[view.name] = layout
        return layout

    def online_vectors(self, view_name: str, keys: Sequence[bytes], at_us: int | None = None) -> np.ndarray:
        """Feature matrix ``(len(keys), width)`` of one view for encoded entity keys (NaN = missing).

        The width is the sum of the features' widths: a vector feature takes ``dim`` columns.
        """
        view = self.view(view_name)
        if isinstance(view, OnDemandView):
            raise DefinitionError(f"{view_name!r} is on-demand: use online_features with request data")
        layout = self._layout(view)
        event_ts, values = layout.codec.decode(self.online.read_batch(view_name, keys))
        if layout.zero_columns:
            unseen = event_ts == MISSING_TS
            if unseen.any():
                values = values.copy()
                values[np.ix_(unseen, layout.zero_columns)] = 0.0
        if layout.ttl_us is None and not layout.since_columns:
            return values
        at = now_us() if at_us is None else at_us
        if layout.ttl_us is not None:
            # MISSING_TS is the smallest int64, so absent entities count as expired too.
            expired = event_ts < at - layout.ttl_us
            if not expired.any():
                return values
            values = values.copy()
            values[expired] = np.nan
        else:
            values = values.copy()
        for column, window in zip(layout.since_columns, layout.since_windows_us, strict=True):
            elapsed = at - values[:, column]
            if window is not None:
                elapsed[elapsed > window] = np.nan
            values[:, column] = elapsed / 1e6
        return values

    def online_features(self, view_names: Sequence[str], entities: Mapping[str, Sequence[object]], *,
                        request: Mapping[str, Sequence[float]] | None = None,
                        at_us: int | None = None) -> dict[str, np.ndarray]:
        """Columns ``view__feature`` for a batch of entities (and on-demand views over ``request`` data)."""
        columns: dict[str, np.ndarray] = {}
        on_demand = []
        for name in view_names:
            view = self.view(name)
            if isinstance(view, OnDemandView):
                on_demand.append(view)
                continue
            try:
                keys = encode_keys([entities[k] for k in view.join_keys])
            except KeyError as exc:
                raise DefinitionError(f"view {name!r} needs join key {exc.args[0]!r}") from None
            matrix = self.online_vectors(name, keys, at_us)
            layout = self._layout(view)
            for column, start, width in zip(layout.columns, layout.starts, layout.widths, strict=True):
                # a vector feature is one (n, dim) matrix; a scalar one column
                columns[column] = matrix[:, start] if width == 1 else matrix[:, start:start + width]
        for view in on_demand:
            inputs = dict(columns)
            for field_name, given in (request or {}).items():
                inputs[input_column(field_name)] = np.asarray(given, dtype=np.float64)
            for feature, values in view.compute(inputs).items():
                columns[output_column(view.name, feature)] = values
        return columns

    def stream_processor(self, view_names: Sequence[str], **kwargs: int) -> StreamProcessor:
        """A processor that keeps these aggregation views fresh in this store's online store."""
        views = [self.view(n) for n in view_names]
        bad = [v.name for v in views if not isinstance(v, AggregationView)]
        if bad:
            raise DefinitionError(f"only aggregation views are stream-processed, not {bad}")
        return StreamProcessor(views, self.online, **kwargs)  # type: ignore[arg-type]
