"""The stream processor: events from a transport -> exact windowed aggregates -> the online store.

Each micro-batch is validated with the event schema, deduplicated by event id (a redelivered message
is not counted twice), aggregated by :class:`WindowedAggregator` per view, and the packed vectors of
every entity whose aggregates changed (new events, or events leaving a window) are written to the online
store in one batch per view; only then are the messages acknowledged.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlsd.core.errors import DefinitionError
from mlsd.events.log import id_hashes
from mlsd.events.schema import EVENT_ID, EventSchema, records_to_table, validate
from mlsd.events.transport import Message, StreamTransport
from mlsd.features.definitions import AggregationView
from mlsd.features.online.base import KEY_SEPARATOR, OnlineStore
from mlsd.features.online.codec import VectorCodec
from mlsd.features.windows import WindowedAggregator


@dataclass
class ProcessorStats:
    """Counters and per-batch commit times of a processor run."""

    events: int = 0
    duplicates: int = 0
    rejected: int = 0
    writes: int = 0
    batches: int = 0


class _RecentIds:
    """Event ids seen recently (bounded FIFO), for exactly-once aggregation under redelivery."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.seen: set[int] = set()
        self.order: deque[int] = deque()

    def fresh(self, ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        hashes = id_hashes(ids).tolist()
        keep = np.zeros(len(hashes), dtype=bool)
        seen, order = self.seen, self.order
        for i, h in enumerate(hashes):
            if h not in seen:
                seen.add(h)
                order.append(h)
                keep[i] = True
        while len(order) > self.capacity:
            seen.discard(order.popleft())
        return keep


class StreamProcessor:
    """Keeps the aggregation views of one event schema up to date in an online store."""

    def __init__(self, views: Sequence[AggregationView], store: OnlineStore, *,
                 dedup_capacity: int = 2_000_000) -> None:
        if not views:
            raise DefinitionError("a stream processor needs at least one aggregation view")
        schemas = {v.source.log.schema.name for v in views}
        if len(schemas) != 1:
            raise DefinitionError(f"one processor handles one event schema, got {sorted(schemas)}")
        self.schema: EventSchema = views[0].source.log.schema
        self.store = store
        self.aggregators = [WindowedAggregator(v) for v in views]
        self.codecs = [VectorCodec(len(v.aggregations)) for v in views]
        self._key_bytes: list[list[bytes]] = [[] for _ in views]
        self._recent = _RecentIds(dedup_capacity)
        self.stats = ProcessorStats()

    def process(self, table: pa.Table) -> int:
        """Aggregate validated events (the log's stored schema) and write changed entities; returns events used."""
        keep = self._recent.fresh(table.column(EVENT_ID))
        self.stats.duplicates += int((~keep).sum())
        if not keep.all():
            table = table.filter(pa.array(keep))
        ts = pc.cast(table.column(self.schema.timestamp_field), pa.int64()).to_numpy()
        for i, aggregator in enumerate(self.aggregators):
            view = aggregator.view
            key_columns = [table.column(k).to_pylist() for k in view.join_keys]
            needed = {a.column for a in view.aggregations if a.column is not None}
            columns = {c: table.column(c).to_numpy() for c in needed}
            self._write(i, aggregator.add(ts, key_columns, columns))
        self.stats.events += table.num_rows
        self.stats.batches += 1
        return int(table.num_rows)

    def advance(self, watermark_us: int) -> None:
        """Move event time forward without events (idle streams still see windows expire)."""
        for i, aggregator in enumerate(self.aggregators):
            self._write(i, aggregator.advance(watermark_us))

    def _write(self, i: int, touched: np.ndarray) -> None:
        if len(touched) == 0:
            return
        aggregator = self.aggregators[i]
        key_bytes = self._key_bytes[i]
        if len(key_bytes) < aggregator.n_keys:
            new = aggregator.keys[len(key_bytes):]
            if len(aggregator.view.join_keys) == 1:
                key_bytes.extend(str(k).encode() for k in new)
            else:
                key_bytes.extend(KEY_SEPARATOR.join(map(str, k)).encode() for k in new)  # type: ignore[call-overload]
        touched_list = touched.tolist()
        blobs = self.codecs[i].encode_rows(np.full(len(touched), aggregator.watermark), aggregator.vectors(touched))
        self.store.write_batch(aggregator.view.name, [key_bytes[k] for k in touched_list], blobs)
        self.stats.writes += len(touched_list)
        if aggregator.compact():  # keys gone quiet for a ttl were just written empty: forget them
            self._key_bytes[i] = []

    def process_records(self, records: list[dict[str, object]]) -> int:
        """Validate dict payloads (bad ones are skipped: the ingestor dead-letters them) and process."""
        result = validate(records_to_table(records, self.schema), self.schema)
        self.stats.rejected += len(result.rejects)
        return self.process(result.valid)

    def run(self, transport: StreamTransport, group: str, consumer: str, *, batch: int = 5000,
            block_ms: int = 50, stop: Callable[[], bool] | None = None, max_idle_polls: int | None = None,
            on_commit: Callable[[list[Message]], None] | None = None) -> ProcessorStats:
        """Consume ``transport`` until ``stop()`` (or ``max_idle_polls`` empty polls), acknowledging after each write.

        ``on_commit`` sees each batch once its aggregates are readable (freshness measurement hooks here).
        """
        transport.ensure_group(group)
        idle = 0
        while stop is None or not stop():
            messages = transport.read(group, consumer, batch, block_ms)
            if not messages:
                idle += 1
                if max_idle_polls is not None and idle >= max_idle_polls:
                    break
                continue
            idle = 0
            self.process_records([m.payload for m in messages])
            if on_commit is not None:
                on_commit(messages)
            transport.ack(group, [m.id for m in messages])
        return self.stats
