"""The monitor's first pass after a restart: from its checkpoint against re-reading every log.

Writes ``--requests`` feature-log records (two numeric features, one categorical entity, two
candidates, 100 requests per second of event time) across ``--logs`` files, one per earlier service
start, with labels for a third of them; a monitor reads them all and checkpoints. Then, as a restarted
service does, a new monitor either resumes from the checkpoint and reads the few records written
since (``resume_s``) or reads every log from the start (``rebuild_s``, the baseline); both end in the
same state (checked).

Usage: python benchmarks/monitor_restart.py [--requests 300000] [--logs 4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import emit
from mlsd.core.records import FeatureLogRecord, encode_record
from mlsd.monitoring import DatasetProfile, MonitorConfig, OnlineMonitor
from mlsd.monitoring.runner import CHECKPOINT, MonitorPasses

RATE = 100.0  # requests per event second


def _write(logs: Path, labels: Path, first: int, last: int, files: int, rng: np.random.Generator) -> None:
    for n, rows in enumerate(np.array_split(np.arange(first, last), files)):
        with open(logs / f"features-{first}-{n}.jsonl", "ab") as out:
            out.write(b"".join(encode_record(FeatureLogRecord(
                request_id=f"r{i}", at_us=round(i / RATE * 1e6), model_version="1",
                features={"x": [float(rng.normal())] * 2}, entities={"c": ["a", "b"]}, predictions=[0.1, 0.09]))
                + b"\n" for i in rows.tolist()))
    with open(labels / f"labels-{first}.jsonl", "a", encoding="utf-8") as out:
        out.write("".join(json.dumps({"request_id": f"r{i}", "label": 1.0}) + "\n" for i in range(first, last, 3)))
        out.write(json.dumps({"watermark_s": last / RATE}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300_000)
    parser.add_argument("--logs", type=int, default=4)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    profile = DatasetProfile.build({"x": rng.normal(0, 1, 5000), "prediction": rng.uniform(0, 0.2, 5000)},
                                   {"c": rng.choice(["a", "b"], 5000)})
    config = MonitorConfig(window_s=600, label_delay_s=60)
    work = Path(tempfile.mkdtemp(prefix="mlsd-monitor-restart-"))
    logs, labels, out = work / "logs", work / "labels", work / "out"
    logs.mkdir()
    labels.mkdir()
    _write(logs, labels, 0, args.requests, args.logs, rng)
    before = MonitorPasses(OnlineMonitor(profile, config), logs, labels, out, checkpoint_s=float("inf"))
    before.step()
    started = time.perf_counter()
    before.checkpoint()
    checkpoint_s = time.perf_counter() - started
    extra = args.requests + 1000
    _write(logs, labels, args.requests, extra, 1, rng)  # what the new service logged before its first pass
    started = time.perf_counter()
    resumed = MonitorPasses(OnlineMonitor(profile, config), logs, labels, out)
    assert resumed.resume()
    resumed.step()
    resume_s = time.perf_counter() - started
    started = time.perf_counter()
    rebuilt = MonitorPasses(OnlineMonitor(profile, config), logs, labels, work / "rebuilt")
    rebuilt.step()
    rebuild_s = time.perf_counter() - started
    keys = ("records", "labels", "late_records", "windows")
    same = all(resumed.monitor.state()[k] == rebuilt.monitor.state()[k] for k in keys)
    emit("monitor_restart", {
        "requests": extra, "log_files": args.logs + 1,
        "log_mb": round(sum(p.stat().st_size for p in logs.iterdir()) / 1e6, 1),
        "checkpoint_mb": round((out / CHECKPOINT).stat().st_size / 1e6, 2),
        "checkpoint_write_s": round(checkpoint_s, 3),
        "resume_s": round(resume_s, 3), "rebuild_s": round(rebuild_s, 3),
        "rebuild_vs_resume": round(rebuild_s / max(resume_s, 1e-9), 1), "same_state": same})


if __name__ == "__main__":
    main()
