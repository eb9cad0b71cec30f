"""Push intake: events a client sends -> validation -> the durable event log -> the online store.

Feast's push API with the event log first: a batch is acknowledged only once its events are durable in
the log and their aggregates are written online, so a crash after the acknowledgement loses nothing and
a crash before it is answered by the client's retry (the log and the processor deduplicate by event id;
a client that sends no ``event_id`` gets one derived from the event's content, so a resend matches).
A batch with any invalid event is refused whole, naming each bad field, and nothing is written. On
start the stream processor replays the log, so windows and counts continue from where the log ends.
The intake is the log's single writer (an exclusive lock): a second process cannot open one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from mlsd.core.errors import MlsdError
from mlsd.events.log import EventLog
from mlsd.events.replay import replay
from mlsd.events.schema import records_to_table, validate
from mlsd.features.store import FeatureStore


class PushRejectedError(MlsdError):
    """A pushed batch with invalid events; ``errors`` lists ``{"field", "message"}`` per bad event."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class PushResult:
    """One accepted batch: events newly appended, events already in the log, and the typed events."""

    accepted: int
    duplicates: int
    events: pa.Table


class PushIntake:
    """Appends pushed events to ``log`` (opened as its writer) and streams them into ``view_names``."""

    def __init__(self, store: FeatureStore, log: EventLog, view_names: Sequence[str], *,
                 replay_batch_rows: int = 50_000) -> None:
        self.log = log
        self.processor = store.stream_processor(view_names)
        for batch in replay(log, batch_rows=replay_batch_rows):
            self.processor.process(pa.Table.from_batches([batch]))

    def push(self, records: Sequence[Mapping[str, Any]]) -> PushResult:
        """Validate every record, then append and aggregate them all; raises :class:`PushRejectedError`."""
        result = validate(records_to_table(list(records), self.log.schema), self.log.schema)
        if result.rejects:
            raise PushRejectedError([{"field": f"[{r.row - 1}].{r.field}", "message": r.reason}
                                     for r in result.rejects])
        appended = self.log.append(result.valid)  # durable before anything reads it
        self.processor.process(result.valid)  # ids it has already aggregated are skipped
        return PushResult(appended.appended, appended.duplicates, result.valid)
