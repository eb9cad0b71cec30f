"""The append-only inference feature log: what was served, with the exact features, by request id.

Each scored request becomes one JSON line (request id, time, model version, entities, request
fields, feature vector, predictions). A writer thread batches lines and flushes + fsyncs them every
``flush_interval`` seconds, so logging costs the request path one queue put. Lines are whole or
absent after a crash (readers skip a torn last line); at most ``flush_interval`` of the newest
records can be lost on power failure, which is the price of not fsyncing per request.
"""

from __future__ import annotations

import os
import queue
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from mlsd.core.records import DECODER, FeatureLogRecord, encode_record


class FeatureLog:
    """Background-flushed JSONL log under ``directory`` (one file per process start)."""

    def __init__(self, directory: str | os.PathLike[str], flush_interval: float = 0.2) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"features-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        # a line, None (close), or an Event to set once everything queued before it is on disk (flush)
        self._queue: queue.Queue[bytes | threading.Event | None] = queue.Queue()
        self._interval = flush_interval
        self._file = open(self.path, "ab")  # noqa: SIM115 - owned by the writer thread
        self._thread = threading.Thread(target=self._write, name="feature-log", daemon=True)
        self._thread.start()
        self.written = 0

    def append(self, record: FeatureLogRecord) -> None:
        # Serialized here, not in the writer thread: big batches serialized there hold the GIL in
        # bursts and showed up as p99 spikes on the request path.
        self._queue.put(encode_record(record))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every record appended so far is written and synced; False if that took too long."""
        if not self._thread.is_alive():
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def _write(self) -> None:
        running = True
        while running:
            lines: list[bytes] = []
            waiting: list[threading.Event] = []
            try:
                item = self._queue.get(timeout=self._interval)
                while True:
                    if item is None:
                        running = False
                        break
                    if isinstance(item, threading.Event):
                        waiting.append(item)
                    else:
                        lines.append(item)
                    item = self._queue.get_nowait()
            except queue.Empty:
                pass
            if lines:
                self._file.write(b"\n".join(lines) + b"\n")
                self._file.flush()
                os.fsync(self._file.fileno())
                self.written += len(lines)
            for done in waiting:
                done.set()

    def close(self) -> None:
        """Write everything queued, then close."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._file.close()


def read_feature_log(directory: str | os.PathLike[str]) -> Iterator[FeatureLogRecord]:
    """Every complete record in a feature-log directory (a torn final line is skipped)."""
    for path in sorted(Path(directory).glob("features-*.jsonl")):
        with open(path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break
                yield DECODER.decode(line)
