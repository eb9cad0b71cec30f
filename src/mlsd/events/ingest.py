"""Ingestion: files (CSV/Parquet) and live streams -> validation -> dead letters + the durable log.

The order of effects is what makes ingestion lossless: rejects are fsynced to the dead-letter file and
good events to the log *before* a stream message is acknowledged. A crash before the ack means the
message is delivered again, and the log's dedup by event id makes the retry add nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from tqdm import tqdm

from mlsd.events.deadletter import DeadLetterFile
from mlsd.events.log import EventLog
from mlsd.events.schema import EVENT_ID, Reject, records_to_table, validate
from mlsd.events.transport import Message, StreamTransport


@dataclass
class IngestReport:
    """Totals of one ingestion: accepted (newly appended), duplicates skipped, rejected to dead letters."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    reject_samples: list[str] = field(default_factory=list)

    def add(self, other: IngestReport) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.reject_samples.extend(other.reject_samples[: max(0, 5 - len(self.reject_samples))])


class Ingestor:
    """Validates batches against the log's schema and appends them; rejects go to the dead-letter file."""

    def __init__(self, log: EventLog, dead_letters: DeadLetterFile | None = None) -> None:
        self.log = log
        self.dead_letters = dead_letters or DeadLetterFile(log.root / "deadletter.jsonl")

    def ingest_table(self, raw: pa.Table, source: str, *, first_row: int = 1,
                     seen: dict[int, int] | None = None) -> IngestReport:
        result = validate(raw, self.log.schema, first_row=first_row, seen=seen)
        self._dead_letter(result.rejects, source)
        appended = self.log.append(result.valid)
        return IngestReport(appended.appended, appended.duplicates, len(result.rejects),
                            [r.message for r in result.rejects[:5]])

    def _dead_letter(self, rejects: list[Reject], source: str) -> None:
        if rejects:
            self.dead_letters.write(rejects, source)

    def ingest_file(self, path: str | os.PathLike[str], *, chunk_rows: int = 500_000,
                    progress: bool = False) -> IngestReport:
        """Ingest a CSV (header row, values validated as text) or Parquet file in bounded-memory chunks."""
        path = Path(path)
        report = IngestReport()
        seen: dict[int, int] = {}
        row = 1
        bar = tqdm(desc=f"ingest {path.name}", unit=" rows", disable=None if progress else True)
        for chunk in _read_chunks(path, chunk_rows):
            report.add(self.ingest_table(chunk, str(path), first_row=row, seen=seen))
            row += chunk.num_rows
            bar.update(chunk.num_rows)
        bar.close()
        return report

    def ingest_records(self, records: list[dict[str, object]], source: str) -> IngestReport:
        if not records:
            return IngestReport()
        return self.ingest_table(records_to_table(records, self.log.schema), source)

    def consume(self, transport: StreamTransport, group: str, consumer: str, *, batch: int = 1000,
                block_ms: int = 100, max_messages: int | None = None,
                stop: Callable[[], bool] | None = None, claim_idle_ms: int = 30_000) -> IngestReport:
        """Read the stream until it is drained (or ``stop()``), ingesting and then acknowledging each batch.

        Messages another consumer left pending for ``claim_idle_ms`` are taken over first.
        """
        transport.ensure_group(group)
        report = IngestReport()
        handled = 0
        while max_messages is None or handled < max_messages:
            messages = transport.claim_stale(group, consumer, claim_idle_ms, batch)
            if not messages:
                messages = transport.read(group, consumer, batch, block_ms)
            if not messages:
                if stop is None or stop():
                    break
                continue
            report.add(self.ingest_messages(messages, transport.__class__.__name__))
            transport.ack(group, [m.id for m in messages])
            handled += len(messages)
        return report

    def ingest_messages(self, messages: list[Message], source: str) -> IngestReport:
        """Stream messages, with the transport's event id for a payload that has none (resends dedupe)."""
        records = [m.payload if m.event_id is None or EVENT_ID in m.payload else {**m.payload, EVENT_ID: m.event_id}
                   for m in messages]
        return self.ingest_records(records, f"{source}:{messages[0].id}..{messages[-1].id}")


def _read_chunks(path: Path, chunk_rows: int) -> Iterator[pa.Table]:
    if path.suffix == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield pa.Table.from_batches([batch])
        return
    # Read every column as text so that validation (not the CSV parser) decides what is malformed.
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
    options = pacsv.ConvertOptions(column_types={name: pa.string() for name in header},
                                   strings_can_be_null=True, null_values=[""])
    reader = pacsv.open_csv(path, convert_options=options,
                            read_options=pacsv.ReadOptions(block_size=64 << 20))
    buffered: list[pa.RecordBatch] = []
    rows = 0
    for batch in reader:
        buffered.append(batch)
        rows += batch.num_rows
        if rows >= chunk_rows:
            yield pa.Table.from_batches(buffered)
            buffered, rows = [], 0
    if buffered:
        yield pa.Table.from_batches(buffered)
