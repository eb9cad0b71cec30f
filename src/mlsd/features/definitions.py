"""Feature definitions in Python: entities, batch feature views, windowed aggregation views, on-demand views.

Definitions are plain frozen dataclasses; they describe *what* a feature is. The offline store, the
materializer and the stream processor all read the same definition, which is what keeps the offline
and online values of a feature equal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from mlsd.core.errors import DefinitionError
from mlsd.core.timeutil import duration_label, parse_duration
from mlsd.events.log import EventLog

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise DefinitionError(f"{kind} name {name!r} must be an identifier (letters, digits, underscore)")


@dataclass(frozen=True)
class Entity:
    """A thing features describe, identified by one or more join keys (``ip``; or ``ip`` + ``app``)."""

    name: str
    join_keys: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_name("entity", self.name)
        if not self.join_keys:
            raise DefinitionError(f"entity {self.name!r} needs at least one join key")
        for key in self.join_keys:
            _check_name("join key", key)


@dataclass(frozen=True)
class Feature:
    """A named, typed value; online stores hold numeric features (float64, NaN for missing).

    A vector feature (an embedding) has a fixed-size list type, ``vector_feature(name, dim)``: stored
    offline as a Parquet ``fixed_size_list<float32>`` and read online as one ``(n, dim)`` matrix.
    """

    name: str
    dtype: pa.DataType = field(default_factory=pa.float64)

    def __post_init__(self) -> None:
        _check_name("feature", self.name)
        if pa.types.is_list(self.dtype) or pa.types.is_large_list(self.dtype):
            raise DefinitionError(f"feature {self.name!r}: a vector feature needs a fixed size (vector_feature)")

    @property
    def width(self) -> int:
        """Values per entity: the vector's dimension, 1 for a scalar."""
        return int(self.dtype.list_size) if pa.types.is_fixed_size_list(self.dtype) else 1


def vector_feature(name: str, dim: int) -> Feature:
    """An embedding feature of ``dim`` float32 values."""
    if dim < 1:
        raise DefinitionError(f"vector feature {name!r} needs a positive dimension, got {dim}")
    return Feature(name, pa.list_(pa.float32(), dim))


@dataclass(frozen=True)
class TableSource:
    """A Parquet file, directory or glob with an event-time column and, optionally, a created-time column.

    When two rows of an entity share an event time, the one with the later created time wins.
    """

    path: str
    timestamp_field: str = "event_timestamp"
    created_timestamp_field: str | None = None

    def relation_sql(self) -> str:
        location = Path(self.path)
        pattern = str(location / "**" / "*.parquet") if location.is_dir() else self.path
        return f"read_parquet('{pattern}')"


@dataclass(frozen=True)
class EventLogSource:
    """The events of an :class:`~mlsd.events.EventLog` (read through its manifest, never half-written)."""

    log: EventLog

    @property
    def timestamp_field(self) -> str:
        return self.log.schema.timestamp_field

    def relation_sql(self) -> str:
        from mlsd.core.duck import sql_paths

        paths = [str(p) for p in self.log.segment_paths()]
        if not paths:
            schema = self.log.schema.stored_schema
            cols = ", ".join(f"NULL::{_duck_type(f.type)} AS {f.name}" for f in schema)
            return f"(SELECT {cols} WHERE false)"
        return f"read_parquet({sql_paths(paths)})"


def _duck_type(dtype: pa.DataType) -> str:
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMPTZ"
    if pa.types.is_integer(dtype):
        return "BIGINT"
    if pa.types.is_floating(dtype):
        return "DOUBLE"
    if pa.types.is_boolean(dtype):
        return "BOOLEAN"
    return "VARCHAR"


@dataclass(frozen=True)
class FeatureView:
    """Features of an entity read from a table: point-in-time lookups of the latest row within ``ttl``."""

    name: str
    entities: tuple[Entity, ...]
    source: TableSource
    features: tuple[Feature, ...]
    ttl: timedelta | None = None
    version: int = 1
    encoder: str | None = None  # the version of the encoder whose vectors it holds (part of its lineage)

    def __post_init__(self) -> None:
        _check_name("feature view", self.name)
        _check_unique(self.name, [f.name for f in self.features])

    @property
    def lineage_version(self) -> str:
        """The view's version with its encoder's: a new encoder means new values, as a new version does."""
        return f"v{self.version}" + (f"+{self.encoder}" if self.encoder else "")

    @property
    def join_keys(self) -> tuple[str, ...]:
        return tuple(k for e in self.entities for k in e.join_keys)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)


AggFunction = Literal["count", "sum", "mean", "distinct_count", "last", "nth_last", "time_since_last"]
_NEEDS_COLUMN = {"sum", "mean", "distinct_count", "last", "nth_last"}


@dataclass(frozen=True)
class Aggregation:
    """One windowed aggregate over the events strictly before the lookup time.

    ``window=None`` means all history. ``time_since_last`` is seconds from the lookup time back to the
    entity's latest event (the online store keeps that event's time and subtracts at read time).
    ``nth_last`` is the value of the ``n``-th most recent event (``n=1`` is ``last``): a user's last-N
    items are N of them. It is defined over all history only.
    """

    function: AggFunction
    column: str | None = None
    window: timedelta | str | None = None
    name: str | None = None
    n: int = 1

    def __post_init__(self) -> None:
        if self.function in _NEEDS_COLUMN and self.column is None:
            raise DefinitionError(f"aggregation {self.function!r} needs a column")
        if self.function == "nth_last" and (self.window is not None or self.n < 1):
            raise DefinitionError(f"nth_last needs n >= 1 (got {self.n}) and no window (got {self.window!r})")
        if self.window is not None:
            window = parse_duration(self.window)
            if window <= timedelta(0):
                raise DefinitionError(f"aggregation window must be positive, got {self.window!r}")
            object.__setattr__(self, "window", window)
        if self.name is None:
            parts = [self.function] + ([str(self.n)] if self.function == "nth_last" else []) + (
                [self.column] if self.column else [])
            parts.append(duration_label(self.window) if isinstance(self.window, timedelta) else "all")
            object.__setattr__(self, "name", "_".join(parts))
        _check_name("aggregation", str(self.name))

    @property
    def window_us(self) -> int | None:
        return None if self.window is None else int(parse_duration(self.window).total_seconds() * 1_000_000)

    @property
    def feature_name(self) -> str:
        return str(self.name)


@dataclass(frozen=True)
class AggregationView:
    """Windowed aggregates of an event stream per entity, computed offline and by the stream processor.

    ``ttl``: events older than this before the lookup time count in no aggregation (every window is
    capped at it; all-history aggregates, ``last``, ``time_since_last`` and ``nth_last`` see only the
    ttl). An entity with no event within the ttl has no state left, so the stream processor forgets it:
    with a ttl, its memory is bounded by the entities active within one ttl (session state, say).
    """

    name: str
    entities: tuple[Entity, ...]
    source: EventLogSource
    aggregations: tuple[Aggregation, ...]
    version: int = 1
    ttl: timedelta | str | None = None

    def __post_init__(self) -> None:
        _check_name("aggregation view", self.name)
        if self.ttl is not None:
            ttl = parse_duration(self.ttl)
            if ttl <= timedelta(0):
                raise DefinitionError(f"view {self.name!r}: ttl must be positive, got {self.ttl!r}")
            object.__setattr__(self, "ttl", ttl)
        _check_unique(self.name, [a.feature_name for a in self.aggregations])
        fields = self.source.log.schema.fields
        for key in self.join_keys:
            if key not in fields:
                raise DefinitionError(f"view {self.name!r}: join key {key!r} is not a field of the events")
        for agg in self.aggregations:
            if agg.column is not None and agg.column not in fields:
                raise DefinitionError(f"view {self.name!r}: column {agg.column!r} is not a field of the events")

    @property
    def join_keys(self) -> tuple[str, ...]:
        return tuple(k for e in self.entities for k in e.join_keys)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(a.feature_name for a in self.aggregations)

    @property
    def ttl_us(self) -> int | None:
        return None if self.ttl is None else int(parse_duration(self.ttl).total_seconds() * 1_000_000)

    def window_us(self, aggregation: Aggregation) -> int | None:
        """``aggregation``'s window in µs, capped at the view's ttl (None: all history, no ttl)."""
        ttl, window = self.ttl_us, aggregation.window_us
        return window if ttl is None else ttl if window is None else min(window, ttl)


Columns = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class OnDemandView:
    """Request-time features: one numpy function run identically on training frames and live requests.

    ``inputs`` are request fields or ``view:feature`` references; ``function`` maps a dict of equal-length
    arrays (named as the inputs, with ``:`` replaced by ``__``) to a dict of output arrays.
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[Feature, ...]
    function: Callable[[Columns], Mapping[str, np.ndarray]]
    version: int = 1

    def __post_init__(self) -> None:
        _check_name("on-demand view", self.name)
        _check_unique(self.name, [f.name for f in self.outputs])

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.outputs)

    def compute(self, columns: Columns) -> dict[str, np.ndarray]:
        """Run the transform; checks that every declared output comes back with one value per row."""
        missing = [name for name in self.inputs if input_column(name) not in columns]
        if missing:
            raise DefinitionError(f"on-demand view {self.name!r} is missing inputs {missing}")
        rows = len(next(iter(columns.values()))) if columns else 0
        # Inputs arrive as float64 on both paths (online values are float64), so a function sees one dtype.
        result = self.function({input_column(n): np.asarray(columns[input_column(n)], dtype=np.float64)
                                for n in self.inputs})
        out = {}
        for feature in self.outputs:
            if feature.name not in result:
                raise DefinitionError(f"on-demand view {self.name!r} did not return {feature.name!r}")
            values = np.asarray(result[feature.name], dtype=np.float64)
            if values.shape != (rows,):
                raise DefinitionError(f"on-demand view {self.name!r}: {feature.name!r} has shape {values.shape}, "
                                      f"expected ({rows},)")
            out[feature.name] = values
        return out


def input_column(reference: str) -> str:
    """The column name an on-demand input has inside frames (``view:feature`` -> ``view__feature``)."""
    return reference.replace(":", "__")


def _check_unique(owner: str, names: list[str]) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise DefinitionError(f"{owner!r} defines feature {name!r} twice")
        seen.add(name)


AnyView = FeatureView | AggregationView | OnDemandView
