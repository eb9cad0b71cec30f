"""Stream transports with consumer groups and acknowledgements: embedded (in-process) and Redis Streams.

Both follow Redis Streams semantics, so code and tests written against one run on the other: a message
read by a group stays *pending* until acknowledged, and pending messages idle longer than a threshold
can be claimed by another consumer (how work survives a crashed consumer).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

import redis

from mlsd.core.errors import StoreUnavailableError
from mlsd.events.schema import EVENT_ID

T = TypeVar("T")


@dataclass(frozen=True)
class Message:
    """One stream entry: transport-assigned id and the event payload."""

    id: str
    payload: dict[str, Any]
    event_id: str | None = None  # the transport's id for a payload that has none (the same on a resend)


@runtime_checkable
class StreamTransport(Protocol):
    """A partition of an event stream, read by consumer groups with at-least-once delivery."""

    def publish(self, payloads: Sequence[Mapping[str, Any]]) -> list[str]:
        """Append payloads; returns their ids in order."""
        ...

    def ensure_group(self, group: str) -> None:
        """Create ``group`` (reading from the start of the stream) if it does not exist."""
        ...

    def read(self, group: str, consumer: str, count: int, block_ms: int = 0) -> list[Message]:
        """Up to ``count`` never-delivered messages for ``group``; waits up to ``block_ms`` if none."""
        ...

    def ack(self, group: str, ids: Sequence[str]) -> int:
        """Acknowledge processed messages; returns how many were pending."""
        ...

    def pending(self, group: str) -> int:
        """Messages delivered to ``group`` and not yet acknowledged."""
        ...

    def claim_stale(self, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Message]:
        """Take over pending messages idle for at least ``min_idle_ms`` (a crashed consumer's work)."""
        ...

    def length(self) -> int:
        """Messages in the stream."""
        ...


@dataclass
class _Group:
    next_index: int
    pending: dict[str, tuple[str, float]]


class EmbeddedStream:
    """In-process transport for tests and the demo; thread-safe, nothing persisted."""

    def __init__(self) -> None:
        self._entries: list[Message] = []
        self._index_of: dict[str, int] = {}
        self._groups: dict[str, _Group] = {}
        self._cond = threading.Condition()
        self._sequence = 0

    def publish(self, payloads: Sequence[Mapping[str, Any]]) -> list[str]:
        with self._cond:
            ids = []
            millis = int(time.time() * 1000)
            for payload in payloads:
                self._sequence += 1
                message = Message(f"{millis}-{self._sequence}", dict(payload))
                self._index_of[message.id] = len(self._entries)
                self._entries.append(message)
                ids.append(message.id)
            self._cond.notify_all()
            return ids

    def ensure_group(self, group: str) -> None:
        with self._cond:
            self._groups.setdefault(group, _Group(0, {}))

    def read(self, group: str, consumer: str, count: int, block_ms: int = 0) -> list[Message]:
        deadline = time.monotonic() + block_ms / 1000
        with self._cond:
            state = self._groups[group]
            while state.next_index >= len(self._entries):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)
            batch = self._entries[state.next_index : state.next_index + count]
            state.next_index += len(batch)
            now = time.monotonic()
            for message in batch:
                state.pending[message.id] = (consumer, now)
            return list(batch)

    def ack(self, group: str, ids: Sequence[str]) -> int:
        with self._cond:
            pending = self._groups[group].pending
            return sum(pending.pop(i, None) is not None for i in ids)

    def pending(self, group: str) -> int:
        with self._cond:
            return len(self._groups[group].pending)

    def claim_stale(self, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Message]:
        with self._cond:
            pending = self._groups[group].pending
            now = time.monotonic()
            stale = [i for i, (_, since) in pending.items() if (now - since) * 1000 >= min_idle_ms][:count]
            for i in stale:
                pending[i] = (consumer, now)
            return [self._entries[self._index_of[i]] for i in stale]

    def length(self) -> int:
        with self._cond:
            return len(self._entries)


class RedisStream:
    """Redis Streams transport (``XADD``/``XREADGROUP``/``XACK``/``XAUTOCLAIM``); payloads are JSON.

    A connection error (a restart, a network blip) is retried with exponential backoff for up to
    ``retry_for_s``, then raised as :class:`~mlsd.core.errors.StoreUnavailableError`. A publish that
    fails half way is sent again whole; each payload without an ``event_id`` is given one beside it
    first (this publisher's id and a sequence number; :attr:`Message.event_id`, the payload itself
    is untouched), so the copies that did land are deduplicated by the event log. A consumer group
    lost with the server's data is created again.
    """

    def __init__(self, stream: str, url: str = "redis://127.0.0.1:6379/0", *, maxlen: int | None = None,
                 retry_for_s: float = 30.0) -> None:
        self.stream = stream
        self.url = url
        self.client = redis.Redis.from_url(url)
        self.maxlen = maxlen
        self.retry_for_s = retry_for_s
        self._publisher = uuid.uuid4().hex[:12]
        self._sequence = 0
        self._groups: set[str] = set()

    def _retry(self, operation: Callable[[], T]) -> T:
        delay, deadline = 0.05, time.monotonic() + self.retry_for_s
        while True:
            try:
                return operation()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if time.monotonic() + delay > deadline:
                    raise StoreUnavailableError(f"Redis at {self.url} unreachable for {self.retry_for_s:g} s: {exc}"
                                                ) from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc) or not self._groups:
                    raise
                for group in self._groups:  # the server restarted empty: the stream and its groups are gone
                    self._create_group(group)

    def publish(self, payloads: Sequence[Mapping[str, Any]]) -> list[str]:
        entries = []
        for payload in payloads:
            entry = {"d": json.dumps(payload, default=str)}
            if EVENT_ID not in payload:
                self._sequence += 1
                entry["e"] = f"{self._publisher}-{self._sequence}"
            entries.append(entry)

        def send() -> list[str]:
            pipe = self.client.pipeline(transaction=False)
            for entry in entries:
                pipe.xadd(self.stream, entry, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
            return [i.decode() for i in pipe.execute()]

        return self._retry(send)

    def _create_group(self, group: str) -> None:
        try:
            self.client.xgroup_create(self.stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def ensure_group(self, group: str) -> None:
        self._groups.add(group)
        self._retry(lambda: self._create_group(group))

    @staticmethod
    def _decode(entries: Any) -> list[Message]:
        return [Message(i.decode(), json.loads(fields[b"d"]), fields[b"e"].decode() if b"e" in fields else None)
                for i, fields in entries if fields]

    def read(self, group: str, consumer: str, count: int, block_ms: int = 0) -> list[Message]:
        reply = self._retry(lambda: self.client.xreadgroup(group, consumer, {self.stream: ">"}, count=count,
                                                           block=block_ms if block_ms > 0 else None))
        if not reply:
            return []
        return self._decode(cast(list[Any], reply)[0][1])

    def ack(self, group: str, ids: Sequence[str]) -> int:
        return int(self._retry(lambda: self.client.xack(self.stream, group, *ids))) if ids else 0

    def pending(self, group: str) -> int:
        return int(self._retry(lambda: self.client.xpending(self.stream, group))["pending"])

    def claim_stale(self, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Message]:
        reply = self._retry(lambda: self.client.xautoclaim(self.stream, group, consumer, min_idle_time=min_idle_ms,
                                                           count=count))
        return self._decode(reply[1])

    def length(self) -> int:
        return int(self._retry(lambda: self.client.xlen(self.stream)))

    def delete(self) -> None:
        """Remove the stream and its groups (tests and demos clean up with this)."""
        self.client.delete(self.stream)
