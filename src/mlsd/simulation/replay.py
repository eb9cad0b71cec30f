"""Replays events through a running service over HTTP, in time order, and delivers their labels late.

A :class:`ReplaySource` yields requests in event-time order and, for each response, says what the
user did (the label) and which event the stream processor should see. The driver paces requests by
a speed factor (event seconds per wall second; ``None`` = as fast as the service answers), keeps
the stream processor advancing with the request clock (so online features stay fresh, with no
look-ahead: a request at ``t`` sees the events strictly before ``t``, and windows expire by ``t``
even when no event arrives, as the point-in-time store computes them), and posts labels once
``label_delay_s`` of event time has passed (in batches, at most ``label_flush_s`` later), with a
watermark so the monitor knows when a window's labels are complete.
"""

from __future__ import annotations

import heapq
import http.client
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mlsd.core.errors import MlsdError
from mlsd.core.progress import progress


@dataclass
class ReplayItem:
    """One request to send: its event time, body, and what to do with the response."""

    at_s: float
    body: dict[str, Any]
    # response body -> (label of the shown candidate, stream event rows to process); a ranking
    # system's label is the list of (item, relevance) of the items the user judged
    outcome: Callable[[dict[str, Any]], tuple[float | list[tuple[str, float]], list[dict[str, Any]]]]


class ReplaySource(Protocol):
    def __iter__(self) -> Iterator[ReplayItem]: ...

    def close(self) -> None: ...

    def process_stream(self, rows: list[dict[str, Any]], watermark_s: float) -> None:
        """Feed served events (all before ``watermark_s``) to the stream processor, then move its clock
        to just before ``watermark_s``, so windows expire as of the next request's time."""
        ...


class JudgedTraffic:
    """Base of a traffic source whose labels are known in advance (relevance judgments, later ratings):
    nothing streams into the service while it is replayed, and it holds nothing to release."""

    def process_stream(self, rows: list[dict[str, Any]], watermark_s: float) -> None:
        """Nothing to stream: the labels are batch data."""

    def close(self) -> None:
        """Nothing to release."""


def judged(label: list[tuple[str, float]]) -> Callable[[dict[str, Any]], tuple[list[tuple[str, float]], list[Any]]]:
    """The outcome of a request whose labels do not depend on the answer: ``label``, no stream rows."""
    def outcome(answer: dict[str, Any]) -> tuple[list[tuple[str, float]], list[Any]]:
        return label, []
    return outcome


class ServiceClient:
    """A keep-alive HTTP/1.1 JSON client for one service (one connection, reconnecting when dropped)."""

    def __init__(self, host: str, port: int, timeout: float = 30.0, token: str | None = None) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._auth = {"authorization": f"Bearer {token}"} if token else {}  # the service's write token
        self._conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {**self._auth, **({"content-type": "application/json"} if payload is not None else {})}
        for attempt in (0, 1):
            try:
                self._conn.request(method, path, payload, headers)
                response = self._conn.getresponse()
                data = response.read()
                if "json" not in (response.getheader("content-type") or ""):
                    return response.status, data.decode("utf-8", "replace")
                return response.status, json.loads(data) if data else None
            except (ConnectionError, http.client.HTTPException):
                self._conn.close()
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._conn.close()


@dataclass
class ReplayResult:
    """What the driver saw: counts, client-side latency percentiles and shown-ad outcomes per arm."""

    requests: int = 0
    errors: int = 0
    labels_sent: int = 0
    wall_s: float = 0.0
    first_at_s: float | None = None
    last_at_s: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    arms: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "labels_sent": self.labels_sent,
                "wall_s": round(self.wall_s, 2), "first_at_s": self.first_at_s, "last_at_s": self.last_at_s,
                "latency_ms": self.latency_ms, "arms": self.arms}


def replay(source: ReplaySource, client: ServiceClient, *, route: str, labels_route: str = "/v1/labels",
           speed: float | None = None, label_delay_s: float = 600.0, label_flush_s: float = 60.0,
           stream_lag_s: float = 1.0,
           label_batch: int = 2000, on_progress: Callable[[int], None] | None = None) -> ReplayResult:
    """Send every item of ``source`` to ``route``; returns the client-side view of the replay."""
    result = ReplayResult()
    latencies: list[float] = []
    pending: list[tuple[float, int, str, Any]] = []  # (due event time, tiebreak, request id, label)
    stream_rows: list[tuple[float, list[dict[str, Any]]]] = []  # (event time, rows) of served requests
    started = time.perf_counter()
    first = None
    clock: float | None = None  # the request time the stream processor was last moved to
    run = uuid.uuid4().hex[:8]  # request ids stay unique across replays into the same logs
    outcomes: dict[str, list[float]] = {}

    def send_labels(now_s: float, final: bool = False) -> None:
        batch: list[dict[str, Any]] = []
        while pending and (final or pending[0][0] <= now_s):
            _, _, request_id, label = heapq.heappop(pending)
            if isinstance(label, list):
                batch.extend({"request_id": request_id, "item": item, "label": grade} for item, grade in label)
            else:
                batch.append({"request_id": request_id, "label": label})
        for i in range(0, max(len(batch), 1), label_batch):
            status, answer = client.request("POST", labels_route, {
                "labels": batch[i:i + label_batch], "watermark_s": now_s})
            if status != 200:
                raise MlsdError(f"label delivery failed with {status}: {answer}")
        result.labels_sent += len(batch)

    total = getattr(source, "total", None)  # a source that knows its length gets an ETA
    for n, item in enumerate(progress(source, desc="replay", total=total, unit=" req")):
        if first is None:
            first = item.at_s
            result.first_at_s = item.at_s
        if speed is not None:
            wait = (item.at_s - first) / speed - (time.perf_counter() - started)
            if wait > 0:
                time.sleep(wait)
        if pending and pending[0][0] + label_flush_s <= item.at_s:
            send_labels(item.at_s)  # labels go out in batches, as a click pipeline would deliver them
        # Every ``stream_lag_s`` of event time (the online store's freshness) the stream processor takes
        # the events served before this request and moves its clock here: counts over a window must
        # lose the events that left it even when no new event arrives, or serving counts more than the
        # point-in-time store (training-serving skew). Events at this very time wait for the next tick,
        # as the store's "strictly before the request" leaves them out.
        if clock is None or item.at_s - clock >= stream_lag_s:
            due = [row for at, rows in stream_rows if at < item.at_s for row in rows]
            stream_rows = [(at, rows) for at, rows in stream_rows if at >= item.at_s]
            source.process_stream(due, item.at_s)
            clock = item.at_s
        body = {**item.body, "request_id": f"{run}-{n}", "timestamp": item.at_s}
        sent = time.perf_counter()
        status, answer = client.request("POST", route, body)
        latencies.append(time.perf_counter() - sent)
        result.requests += 1
        result.last_at_s = item.at_s
        if status != 200:
            result.errors += 1
            continue
        label, rows = item.outcome(answer)
        heapq.heappush(pending, (item.at_s + label_delay_s, n, body["request_id"], label))
        arm = str(answer.get("arm", "champion"))
        outcomes.setdefault(arm, []).append(float(sum(g for _, g in label)) if isinstance(label, list) else label)
        if rows:
            stream_rows.append((item.at_s, rows))
        if on_progress is not None:
            on_progress(n + 1)
    if stream_rows and result.last_at_s is not None:
        source.process_stream([row for _, rows in stream_rows for row in rows], result.last_at_s + stream_lag_s)
    if result.last_at_s is not None:
        # The replay is over: every label there will ever be is sent, so the watermark can move a year
        # past the last request and every monitoring window closes (weekly windows need more than a day).
        send_labels(result.last_at_s + label_delay_s + 365 * 86_400, final=True)
    result.wall_s = time.perf_counter() - started
    if latencies:
        ms = np.asarray(latencies) * 1e3
        result.latency_ms = {f"p{q}": round(float(np.percentile(ms, q)), 3) for q in (50, 90, 99)}
        result.latency_ms["max"] = round(float(ms.max()), 3)
    result.arms = {arm: {"shown": len(v), "clicks": float(np.sum(v)), "rate": float(np.mean(v))}
                   for arm, v in sorted(outcomes.items())}
    return result


def wait_for_monitor(client: ServiceClient, label_watermark_s: float, timeout_s: float = 60.0) -> dict[str, Any]:
    """Poll ``/dashboard/data`` until the monitor has taken in labels up to ``label_watermark_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, state = client.request("GET", "/dashboard/data")
        if status == 200 and (state.get("label_watermark") or float("-inf")) >= label_watermark_s:
            return dict(state)
        if time.monotonic() > deadline:
            raise MlsdError(f"the monitor did not reach label time {label_watermark_s} within {timeout_s} s")
        time.sleep(0.5)
