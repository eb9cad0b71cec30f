"""Append latency of the event log over many small pushes: it must stay flat as the log grows.

Each push is one validated event appended durably (segment + manifest, both fsynced), as a
service's intake takes them. The log compacts itself every ``EventLog.compact_every`` appends;
before it did, every push added a segment and a longer manifest (append p50 3.8 -> 22 ms by 3.5k
segments). Prints the p50 of the first and of the last 1,000 pushes and their ratio.

Usage: python benchmarks/event_log_append.py [--pushes 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pyarrow as pa

from _common import emit
from mlsd.events import EventLog, EventSchema, Ingestor

SCHEMA = EventSchema("clicks", {"ip": pa.int64(), "app": pa.int32(), "click_time": pa.string()},
                     timestamp_field="click_time")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=100_000)
    args = parser.parse_args()
    seconds = np.zeros(args.pushes)
    with tempfile.TemporaryDirectory() as root:
        log = EventLog(root, SCHEMA)
        ingestor = Ingestor(log)
        for i in range(args.pushes):
            started = time.perf_counter()
            ingestor.ingest_records([{"ip": i, "app": 1, "click_time": "2017-11-07 09:30:38"}], "push")
            seconds[i] = time.perf_counter() - started
        segments = len(log.segment_paths())
        log.close()
    window = min(1000, args.pushes // 2)
    first, last = (float(np.median(part)) * 1e3 for part in (seconds[:window], seconds[-window:]))
    emit("event_log_append", {"pushes": args.pushes, "p50_ms_first": round(first, 3), "p50_ms_last": round(last, 3),
                              "last_vs_first": round(last / first, 2),
                              "p99_ms_all": round(float(np.percentile(seconds, 99)) * 1e3, 3),
                              "segments_at_end": segments})


if __name__ == "__main__":
    main()
