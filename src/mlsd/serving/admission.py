"""Admission at the service's edge: a body read under a size and a time limit, then a short queue for scoring.

Scoring is short CPU work run on the event loop, one request at a time. While a request is scored
nothing else runs, so requests waiting in the kernel or in a half-read body are invisible to a
plain in-flight counter: under overload they pile up and every answer is late. Here:

- a request is admitted only once its whole body has been read, so a slow upload holds a
  connection (for at most ``body_timeout_s``, then a 408), never a place in the scoring queue;
- a body is refused on its ``Content-Length`` before any byte is read, and counted while it
  streams (chunked uploads), so an oversized body costs at most one chunk of memory;
- the queue in front of the scorer is bounded twice: at most ``max_queue`` admitted requests, and
  an expected wait within ``budget_s``: requests ahead x the recent mean time between two answers
  while the queue is busy (scoring plus everything else the loop did meanwhile: reading bodies,
  answering 503s), or the mean scoring time when it is not. A request
  that still waited longer than twice the budget (a pause, a burst) is answered 503 when its turn
  comes rather than scored late. Every refusal is a 503 with ``Retry-After``, at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import ClientDisconnect, Request


class BodyRefusedError(Exception):
    """A body that is not read: ``status`` 400 / 408 / 413 and the reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request's body, refused on its declared length, on its streamed length and on time."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BodyRefusedError(400, "content-length is not a number")
        if int(declared) > limit:
            raise BodyRefusedError(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyRefusedError(413, f"body larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyRefusedError(408, f"body not received within {timeout_s:g} s") from None
    except ClientDisconnect:
        raise BodyRefusedError(400, "client disconnected before the body was complete") from None
    return b"".join(chunks)


class Admission:
    """The scoring queue of one process: ``admit()`` decides at once, ``turn()`` runs one request at a time."""

    def __init__(self, max_queue: int = 64, budget_s: float = 0.025, initial_service_s: float = 0.002) -> None:
        if max_queue < 1 or budget_s <= 0:
            raise ValueError("max_queue must be >= 1 and budget_s > 0")
        self.max_queue, self.budget_s = max_queue, budget_s
        self.queued = 0  # admitted and not finished: waiting for the scorer or being scored
        self.service_s = initial_service_s  # moving mean of one request's scoring time
        self.drain_s = initial_service_s  # moving mean of the time between two answers while requests wait
        self._last_done = 0.0
        self._turn: asyncio.Lock | None = None  # made on first use, in the serving loop

    def admit(self) -> bool:
        """Whether a new request fits: room in the queue and an expected wait within the budget."""
        return self.queued < self.max_queue and self.queued * max(self.service_s, self.drain_s) <= self.budget_s

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[bool]:
        """Wait for the scorer; yields False when the wait already ran past twice the budget (answer 503)."""
        if self._turn is None:
            self._turn = asyncio.Lock()
        self.queued += 1
        arrived = time.perf_counter()
        try:
            async with self._turn:
                # Scoring never awaits, so without this yield a request would be scored before those
                # already received could register: the queue would always look empty.
                await asyncio.sleep(0)
                started = time.perf_counter()
                if started - arrived > 2 * self.budget_s:
                    yield False
                    return
                yield True
                done = time.perf_counter()
                self.service_s += 0.05 * (done - started - self.service_s)
                if self._last_done > arrived:  # the one before finished while this one waited: a busy queue
                    self.drain_s += 0.05 * (done - self._last_done - self.drain_s)
                else:
                    self.drain_s += 0.05 * (done - started - self.drain_s)
                self._last_done = done
        finally:
            self.queued -= 1
