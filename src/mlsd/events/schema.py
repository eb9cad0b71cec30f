"""Typed event schemas and vectorised validation that names the field and the row of each bad event.

Validation never raises for bad rows: it splits a batch into a typed table of good events and a list of
:class:`Reject` records, so one bad event never costs the rest of its batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlsd.core.errors import DefinitionError
from mlsd.core.timeutil import TIMESTAMP, US_PER_S, now_us

EVENT_ID = "event_id"


@dataclass(frozen=True)
class EventSchema:
    """The shape of one kind of event.

    ``fields`` maps names to Arrow types (the timestamp field is stored as UTC microseconds whatever its
    input form). ``id_field`` names the event id; without one, an ``event_id`` column in the input is
    used when present (producer-assigned ids, replays), else ids are derived from the content plus the
    occurrence number of identical rows within a file, so re-ingesting the same file adds nothing.
    """

    name: str
    fields: Mapping[str, pa.DataType]
    timestamp_field: str
    id_field: str | None = None
    optional: frozenset[str] = frozenset()
    timestamp_format: str | None = None
    max_future: timedelta = timedelta(days=1)
    extra: Literal["reject", "ignore"] = "reject"

    def __post_init__(self) -> None:
        if self.timestamp_field not in self.fields:
            raise DefinitionError(f"schema {self.name!r}: timestamp field {self.timestamp_field!r} is not a field")
        if self.id_field is not None and self.id_field not in self.fields:
            raise DefinitionError(f"schema {self.name!r}: id field {self.id_field!r} is not a field")
        if EVENT_ID in self.fields and self.id_field != EVENT_ID:
            raise DefinitionError(f"schema {self.name!r}: {EVENT_ID!r} is reserved for the event id")

    def arrow_type(self, name: str) -> pa.DataType:
        """The stored type of a field (timestamps are always UTC microseconds)."""
        return TIMESTAMP if name == self.timestamp_field else self.fields[name]

    @property
    def stored_schema(self) -> pa.Schema:
        """The schema of the log's segments: ``event_id`` first, then the fields in order."""
        columns = [pa.field(EVENT_ID, pa.string(), nullable=False)]
        columns += [pa.field(n, self.arrow_type(n)) for n in self.fields if n != EVENT_ID]
        return pa.schema(columns)


@dataclass(frozen=True)
class Reject:
    """One event that was not accepted, and why."""

    row: int
    field: str
    reason: str
    record: dict[str, Any]

    @property
    def message(self) -> str:
        return f"row {self.row}: field {self.field!r}: {self.reason}"


@dataclass
class ValidationResult:
    """Good events as a typed table (with ``event_id``), and the rejects."""

    valid: pa.Table
    rejects: list[Reject] = field(default_factory=list)


def _bad_positions(column: pa.Array, target: pa.DataType) -> list[int]:
    """Positions whose value cannot be cast; bisection keeps this O(bad x log n) casts."""
    try:
        pc.cast(column, target, safe=True)
        return []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        if len(column) == 1:
            return [0]
    half = len(column) // 2
    left = _bad_positions(column.slice(0, half), target)
    right = _bad_positions(column.slice(half), target)
    return left + [half + i for i in right]


def _as_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_timestamps(column: pa.Array, schema: EventSchema) -> tuple[pa.Array, np.ndarray]:
    """UTC-microsecond timestamps and a mask of values that could not be parsed."""
    if pa.types.is_timestamp(column.type):
        parsed = column if column.type.tz is not None else pc.assume_timezone(column, "UTC")
        parsed = pc.cast(parsed, TIMESTAMP)
        return parsed, np.zeros(len(column), dtype=bool)
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        # Numbers are epoch seconds, the form most producers emit in JSON.
        seconds = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        micros = np.round(seconds * US_PER_S)
        bad = ~np.isfinite(micros) | (np.abs(micros) > 2**62)
        micros = np.where(bad, 0, micros).astype(np.int64)
        return pa.array(micros, type=pa.int64()).cast(TIMESTAMP), bad
    text = pc.cast(column, pa.string())
    if schema.timestamp_format is not None:
        parsed = pc.strptime(text, format=schema.timestamp_format, unit="us", error_is_null=True)
        bad = pc.and_(parsed.is_null(), text.is_valid()).to_numpy(zero_copy_only=False)
        return pc.cast(pc.assume_timezone(parsed, "UTC"), TIMESTAMP), bad
    positions = _bad_positions(text, pa.timestamp("us"))
    bad = np.zeros(len(text), dtype=bool)
    bad[positions] = True
    cleaned = pc.if_else(pa.array(bad), pa.scalar(None, pa.string()), text)
    parsed = pc.cast(cleaned, pa.timestamp("us", tz="UTC") if _has_offset(text) else pa.timestamp("us"))
    if parsed.type.tz is None:
        parsed = pc.assume_timezone(parsed, "UTC")
    return pc.cast(parsed, TIMESTAMP), bad


def _has_offset(text: pa.Array) -> bool:
    sample = text.drop_null()
    if len(sample) == 0:
        return False
    first = str(sample[0].as_py())
    return first.endswith("Z") or "+" in first[10:] or first[10:].count("-") > 0


def derive_ids(table: pa.Table, seen: dict[int, int] | None = None) -> pa.Array:
    """Content ids: a 64-bit hash of each row plus its occurrence number among identical rows.

    ``seen`` carries occurrence counts across the chunks of one file, so identical rows in different
    chunks still get different ids (and the same ids again when the file is re-ingested).
    """
    frame = table.to_pandas()
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy().tolist()
    counts = {} if seen is None else seen
    ids = []
    for h in hashes:
        occurrence = counts.get(h, 0)
        counts[h] = occurrence + 1
        ids.append(f"{h:016x}-{occurrence}")
    return pa.array(ids, pa.string())


def records_to_table(records: Sequence[Mapping[str, Any]], schema: EventSchema) -> pa.Table:
    """Column-wise table from dict records; a column of mixed Python types becomes strings for validation."""
    names = list(schema.fields)
    extra_names = sorted({k for record in records for k in record} - set(names))
    columns: dict[str, pa.Array] = {}
    for name in names + extra_names:
        values = [record.get(name) for record in records]
        target = schema.arrow_type(name) if name in schema.fields else None
        try:
            if target is None or name == schema.timestamp_field:
                columns[name] = pa.array(values)
            else:
                columns[name] = pa.array(values, type=target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            columns[name] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    present = {name for record in records for name in record}
    return pa.table({k: v for k, v in columns.items() if k in present})


def validate(
    raw: pa.Table, schema: EventSchema, *, first_row: int = 1, seen: dict[int, int] | None = None
) -> ValidationResult:
    """Split ``raw`` into typed valid events (with ``event_id``) and rejects naming field and row.

    ``first_row`` is the row number reported for ``raw``'s first row (1 = first data row of a file);
    ``seen`` is the occurrence state of :func:`derive_ids` for multi-chunk sources.
    Checks: missing or null required fields, values that do not cast to the field's type, unparsable
    timestamps, timestamps more than ``schema.max_future`` ahead of now, and unknown fields.
    """
    n = raw.num_rows
    reason: list[tuple[str, str] | None] = [None] * n

    def mark(positions: np.ndarray | list[int], field_name: str, why: Any) -> None:
        for pos in np.asarray(positions, dtype=np.int64).tolist():
            if reason[pos] is None:
                reason[pos] = (field_name, why(pos) if callable(why) else why)

    if schema.extra == "reject":
        for name in raw.column_names:
            if name not in schema.fields and name != EVENT_ID:
                present = raw.column(name).is_valid().to_numpy(zero_copy_only=False)
                mark(np.flatnonzero(present), name, f"unknown field (not in schema {schema.name!r})")

    typed: dict[str, pa.Array] = {}
    for name in schema.fields:
        if name not in raw.column_names:
            if name not in schema.optional:
                mark(np.arange(n), name, "missing field")
            typed[name] = pa.nulls(n, type=schema.arrow_type(name))
            continue
        column = _as_array(raw.column(name))
        if name == schema.timestamp_field:
            parsed, bad = _parse_timestamps(column, schema)
            mark(np.flatnonzero(bad), name, lambda p, c=column: f"cannot parse timestamp {_describe(c[p].as_py())}")
            micros = pc.cast(parsed, pa.int64()).to_numpy(zero_copy_only=False)
            horizon = now_us() + int(schema.max_future.total_seconds() * US_PER_S)
            future = np.flatnonzero(~bad & parsed.is_valid().to_numpy(zero_copy_only=False) & (micros > horizon))
            mark(future, name, lambda p, c=column: f"timestamp {_describe(c[p].as_py())} is more than "
                 f"{schema.max_future} in the future")
            typed[name] = parsed
        else:
            target = schema.arrow_type(name)
            bad_positions = [] if column.type == target else _bad_positions(column, target)
            mark(bad_positions, name, lambda p, c=column, t=target: f"expected {t}, got {_describe(c[p].as_py())}")
            if bad_positions:
                mask = np.zeros(n, dtype=bool)
                mask[bad_positions] = True
                column = pc.if_else(pa.array(mask), pa.scalar(None, column.type), column)
            typed[name] = pc.cast(column, target)
        if name not in schema.optional:
            nulls = np.flatnonzero(~typed[name].is_valid().to_numpy(zero_copy_only=False))
            mark(nulls, name, "missing value (null) in a required field")

    ok = np.array([r is None for r in reason], dtype=bool)
    rejects: list[Reject] = []
    if not ok.all():
        raw_rows = raw.filter(pa.array(~ok)).to_pylist()
        for pos, record in zip(np.flatnonzero(~ok).tolist(), raw_rows, strict=True):
            field_name, why = reason[pos]  # type: ignore[misc]
            rejects.append(Reject(first_row + pos, field_name, why, _jsonable(record)))

    good = pa.table({k: v for k, v in typed.items()}).filter(pa.array(ok))
    if schema.id_field is not None:
        ids = pc.cast(good.column(schema.id_field), pa.string())
    elif EVENT_ID in raw.column_names:
        # Events replayed from a log (or from a producer that assigns ids) keep their id; in a batch
        # where only some carry one, the others get a content id, as a batch without any would.
        ids = pc.cast(_as_array(raw.column(EVENT_ID)), pa.string()).filter(pa.array(ok))
        if ids.null_count:
            ids = pc.if_else(ids.is_valid(), ids, derive_ids(good, seen))
    else:
        ids = derive_ids(good, seen) if good.num_rows else pa.array([], pa.string())
    stored = {EVENT_ID: ids} | {k: good.column(k) for k in schema.fields if k != EVENT_ID}
    return ValidationResult(pa.Table.from_pydict(stored, schema=schema.stored_schema), rejects)


def _jsonable(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in record.items()}
