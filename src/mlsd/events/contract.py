"""The contract every stream transport passes: ordering, consumer groups, acknowledgement, redelivery.

Each check takes a fresh, empty transport and raises ``AssertionError`` on a violation.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mlsd.events.transport import StreamTransport


def check_publish_then_read_in_order(stream: StreamTransport) -> None:
    stream.ensure_group("g")
    ids = stream.publish([{"n": i} for i in range(10)])
    assert len(ids) == len(set(ids)) == 10
    got = stream.read("g", "c1", 4) + stream.read("g", "c1", 100)
    assert [m.payload["n"] for m in got] == list(range(10))
    assert [m.id for m in got] == ids
    assert stream.length() == 10


def check_groups_are_independent(stream: StreamTransport) -> None:
    stream.ensure_group("a")
    stream.ensure_group("b")
    stream.publish([{"n": 1}, {"n": 2}])
    assert [m.payload["n"] for m in stream.read("a", "x", 10)] == [1, 2]
    assert [m.payload["n"] for m in stream.read("b", "y", 10)] == [1, 2]
    assert stream.read("a", "x", 10) == []


def check_consumers_share_a_group(stream: StreamTransport) -> None:
    stream.ensure_group("g")
    stream.publish([{"n": i} for i in range(6)])
    first = stream.read("g", "c1", 3)
    second = stream.read("g", "c2", 3)
    assert {m.payload["n"] for m in first} | {m.payload["n"] for m in second} == set(range(6))
    assert not {m.id for m in first} & {m.id for m in second}


def check_pending_until_acked(stream: StreamTransport) -> None:
    stream.ensure_group("g")
    stream.publish([{"n": i} for i in range(5)])
    got = stream.read("g", "c", 5)
    assert stream.pending("g") == 5
    assert stream.ack("g", [m.id for m in got[:3]]) == 3
    assert stream.pending("g") == 2
    assert stream.ack("g", [got[0].id]) == 0


def check_unacked_messages_are_redelivered(stream: StreamTransport) -> None:
    """What a crashed consumer read but never acknowledged is claimed by another consumer."""
    stream.ensure_group("g")
    stream.publish([{"n": i} for i in range(4)])
    crashed = stream.read("g", "dead", 4)
    stream.ack("g", [crashed[0].id])
    assert stream.claim_stale("g", "alive", min_idle_ms=60_000, count=10) == []
    time.sleep(0.05)
    claimed = stream.claim_stale("g", "alive", min_idle_ms=10, count=10)
    assert sorted(m.payload["n"] for m in claimed) == [1, 2, 3]
    stream.ack("g", [m.id for m in claimed])
    assert stream.pending("g") == 0


def check_blocking_read_times_out(stream: StreamTransport) -> None:
    stream.ensure_group("g")
    started = time.monotonic()
    assert stream.read("g", "c", 10, block_ms=100) == []
    assert time.monotonic() - started >= 0.08


def check_payload_types_survive(stream: StreamTransport) -> None:
    stream.ensure_group("g")
    payload = {"i": 7, "f": 0.25, "s": "x y", "none": None, "b": True, "t": "2017-11-07 09:30:38"}
    stream.publish([payload])
    assert stream.read("g", "c", 1)[0].payload == payload


CHECKS: tuple[Callable[[StreamTransport], None], ...] = (
    check_publish_then_read_in_order,
    check_groups_are_independent,
    check_consumers_share_a_group,
    check_pending_until_acked,
    check_unacked_messages_are_redelivered,
    check_blocking_read_times_out,
    check_payload_types_survive,
)
