"""Replay of an event log in event-time order, optionally paced at a speed factor of real time."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from mlsd.core.duck import connect, sql_paths
from mlsd.core.timeutil import US_PER_S
from mlsd.events.log import EventLog
from mlsd.events.schema import EVENT_ID


def replay(log: EventLog, *, speed: float | None = None, batch_rows: int = 10_000,
           start_us: int | None = None, end_us: int | None = None) -> Iterator[pa.RecordBatch]:
    """Yield the log's events sorted by (event time, event id), in batches.

    With ``speed`` (e.g. 60 = one hour of events per minute) each batch waits until its first event's
    scaled time has come; without it, events come as fast as they can be read. DuckDB sorts out of core,
    so memory stays bounded for logs larger than RAM.
    """
    paths = [str(p) for p in log.segment_paths()]
    if not paths:
        return
    ts = log.schema.timestamp_field
    where = []
    if start_us is not None:
        where.append(f"epoch_us({ts}) >= {int(start_us)}")
    if end_us is not None:
        where.append(f"epoch_us({ts}) < {int(end_us)}")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    con = connect()
    reader = con.sql(
        f"SELECT * FROM read_parquet({sql_paths(paths)}) {clause} ORDER BY {ts}, {EVENT_ID}"
    ).to_arrow_reader(batch_rows)
    wall_start = time.monotonic()
    first_event_us: int | None = None
    for batch in reader:
        if batch.num_rows == 0:
            continue
        if speed:
            head = pc.cast(batch.column(ts), pa.int64())[0].as_py()
            first_event_us = head if first_event_us is None else first_event_us
            due = (head - first_event_us) / US_PER_S / speed
            delay = due - (time.monotonic() - wall_start)
            if delay > 0:
                time.sleep(delay)
        yield batch
    con.close()
