"""Events: typed schemas, validation with dead letters, a durable deduplicating log, stream transports."""

from mlsd.events.deadletter import DeadLetterFile
from mlsd.events.ingest import Ingestor, IngestReport
from mlsd.events.log import AppendResult, EventLog
from mlsd.events.replay import replay
from mlsd.events.schema import EVENT_ID, EventSchema, Reject, ValidationResult, validate
from mlsd.events.transport import EmbeddedStream, Message, RedisStream, StreamTransport

__all__ = [
    "EVENT_ID",
    "AppendResult",
    "DeadLetterFile",
    "EmbeddedStream",
    "EventLog",
    "EventSchema",
    "IngestReport",
    "Ingestor",
    "Message",
    "RedisStream",
    "Reject",
    "StreamTransport",
    "ValidationResult",
    "replay",
    "validate",
]
