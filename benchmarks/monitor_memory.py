"""Resident memory of the online monitor over many scored requests: it must not grow with traffic.

Feeds ``--requests`` feature-log records (ads-like: 10 candidates x 24 numeric features and 3
categorical entities, ~6 KB each as JSON) through an :class:`OnlineMonitor` with 1-hour windows at
600 requests per second of event time, labels 10 minutes late with a watermark, as a service sees
them. RSS is read after a warm-up (the first 50,000 requests: buffers, first windows, the A/B
arrays start) and at the end; the difference is the growth. Before the monitor kept counts, every
feature value of every request stayed in memory until its window closed (~2M requests per window
at this rate, ~11 GB).

Usage: python benchmarks/monitor_memory.py [--requests 1000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import emit
from mlsd.core.records import FeatureLogRecord
from mlsd.monitoring import DatasetProfile, MonitorConfig, OnlineMonitor

FEATURES = [f"f{i}" for i in range(24)]
ENTITIES = ("app", "channel", "os")
CANDIDATES = 10
RATE = 600.0  # requests per event second


def _rss_mb() -> float:
    """Current resident set size (Linux ``/proc``), MB."""
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kib * 1024 / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=2_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    profile = DatasetProfile.build({**{f: rng.normal(0, 1, 50_000) for f in FEATURES},
                                    "prediction": rng.uniform(0, 0.1, 50_000)},
                                   {e: rng.integers(0, 300, 50_000) for e in ENTITIES})
    monitor = OnlineMonitor(profile, MonitorConfig(window_s=3600, label_delay_s=600))
    # a pool of feature blocks reused across records (generating 1M distinct ones would time the RNG)
    blocks = [{f: rng.normal(0, 1, CANDIDATES).tolist() for f in FEATURES} for _ in range(64)]
    entity_blocks = [{e: rng.integers(0, 300, CANDIDATES).tolist() for e in ENTITIES} for _ in range(64)]
    start_s, warmup, baseline = 1.5e9, 50_000, 0.0
    labelled = 0  # requests up to here have had their labels sent (no per-request state in the driver)
    started = time.perf_counter()
    for first in range(0, args.requests, args.batch):
        records = []
        for i in range(first, min(first + args.batch, args.requests)):
            at = start_s + i / RATE
            p = rng.uniform(0, 0.1, CANDIDATES)
            records.append(FeatureLogRecord(
                request_id=f"r{i}", at_us=round(at * 1e6), model_version="1", arm="champion" if i % 2 else "challenger",
                predictions=p.tolist(), features=blocks[i % 64], entities=entity_blocks[i % 64]))
        monitor.add_records(records)
        now = start_s + (first + args.batch) / RATE
        due = max(int((now - 600 - start_s) * RATE), labelled)  # labels 10 minutes late; 1 request in 20 clicked
        monitor.add_labels([{"request_id": f"r{i}", "label": 1.0} for i in range(labelled, due)
                            if (i * 2654435761) % 1000 < 50], watermark_s=now)
        labelled = due
        if first + args.batch >= warmup and not baseline:
            baseline = _rss_mb()
    end = _rss_mb()
    emit("monitor_memory", {"requests": args.requests, "rss_baseline_mb": round(baseline, 1),
                            "rss_end_mb": round(end, 1),
                            "rss_growth_mb": round(end - baseline, 1), "windows_closed": len(monitor.closed),
                            "records_per_s": round(args.requests / (time.perf_counter() - started))})


if __name__ == "__main__":
    main()
