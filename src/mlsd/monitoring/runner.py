"""Runs an :class:`OnlineMonitor` beside a service: tails the feature and label logs, publishes the state.

The monitor's inputs are files (the feature log and the label log), so its state can always be
rebuilt by reading them from the start (a checkpoint lets a restart skip that); it writes
``state.json`` and ``alerts.jsonl`` atomically after each pass, in its own process
(:class:`MonitorRunner`). With several worker processes only the one holding ``monitor.lock`` starts
it; every worker serves the published state on ``/metrics`` and ``/dashboard``.
"""

from __future__ import annotations

import fcntl
import hashlib
import heapq
import json
import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from mlsd.core.atomic import atomic_write, atomic_write_json
from mlsd.core.records import DECODER, FeatureLogRecord
from mlsd.monitoring.online import OnlineMonitor

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pkl"


class LabelLog:
    """Durable append-only label log: one JSON line per label, fsynced before the POST is acknowledged."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"labels-{os.getpid()}-{os.urandom(4).hex()}.jsonl"
        self._lock = threading.Lock()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def append(self, labels: list[dict[str, Any]], watermark_s: float | None) -> None:
        # A ranking label names the shown item it judges; a binary label is the request's outcome.
        lines = [json.dumps({"request_id": x["request_id"], "label": x["label"],
                             **({"item": x["item"]} if "item" in x else {})}, separators=(",", ":"))
                 for x in labels]
        if watermark_s is not None:
            lines.append(json.dumps({"watermark_s": watermark_s}))
        with self._lock:
            self._file.write("".join(line + "\n" for line in lines))
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


class _Tail:
    """New complete lines of every file matching a pattern, remembering where each file was read up to.

    Each file is read in chunks (a restart on a long log holds one chunk per file, not the log), and
    a line counts as read once it is handed out, so a pass that stops half-way goes on from there.
    """

    CHUNK = 1 << 20

    def __init__(self, directory: Path, pattern: str) -> None:
        self.directory, self.pattern = directory, pattern
        self.offsets: dict[Path, int] = {}

    def streams(self) -> list[Iterator[bytes]]:
        """One iterator of new lines per file (a line still being written is read on the next pass)."""
        return [self._lines(path) for path in sorted(self.directory.glob(self.pattern))]

    def read(self) -> Iterator[bytes]:
        for stream in self.streams():
            yield from stream

    def _lines(self, path: Path) -> Iterator[bytes]:
        offset = read_to = self.offsets.get(path, 0)
        rest = b""
        while True:
            # Opened per chunk, not held across yields: a merge over every log file (a restart after
            # many service starts) would otherwise hold one descriptor per file at once.
            with open(path, "rb") as handle:
                handle.seek(read_to)
                chunk = handle.read(self.CHUNK)
            if not chunk:
                return
            read_to += len(chunk)
            data = rest + chunk
            end = data.rfind(b"\n") + 1
            rest = data[end:]
            for line in data[:end].split(b"\n")[:-1]:
                offset += len(line) + 1
                self.offsets[path] = offset
                if line:
                    yield line


def _time_ordered(streams: list[Iterator[bytes]]) -> Iterator[FeatureLogRecord]:
    """Records of every file merged by event time.

    Each serving process writes its own file in request order; read one file after another, a
    later file's requests would reach windows the earlier file's requests had already closed and
    be counted late. Merging keeps every window open until all files have passed it.
    """
    decoded = [(DECODER.decode(line) for line in stream) for stream in streams]
    return heapq.merge(*decoded, key=lambda record: record.at_us)


class MonitorPasses:
    """The monitor's work: each :meth:`step` feeds new log lines to the monitor and publishes its state.

    Every ``checkpoint_s`` seconds (and after the last pass) the monitor and how far each log was read
    are pickled to ``checkpoint.pkl``; :meth:`resume` picks them up in a restarted service instead of
    re-reading every log from the start. A checkpoint is only a shortcut to the same state: it is
    ignored when the monitor's reference or settings differ, or when a log it read is gone or shorter.
    """

    def __init__(self, monitor: OnlineMonitor, feature_log_dir: Path, label_dir: Path, out_dir: Path,
                 checkpoint_s: float = 30.0) -> None:
        self.monitor, self.out_dir = monitor, out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self._records = _Tail(feature_log_dir, "features-*.jsonl")
        self._labels = _Tail(label_dir, "labels-*.jsonl")
        self.checkpoint_s = checkpoint_s
        self._checkpointed = time.monotonic()

    @property
    def _checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT

    def _key(self) -> str:
        """What the monitor's state depends on besides the logs: its reference profile and settings."""
        text = json.dumps(self.monitor.profile.to_dict(), sort_keys=True) + repr(self.monitor.config)
        return hashlib.sha256(text.encode()).hexdigest()

    def resume(self) -> bool:
        """Continue from the checkpoint if it still describes these logs; True if it did."""
        try:
            with open(self._checkpoint_path, "rb") as handle:
                saved = pickle.load(handle)  # written by this service into its own home, like its models
        except FileNotFoundError:
            return False
        except Exception:  # unreadable (another version's): rebuilt from the logs
            log.warning("monitor checkpoint %s unreadable: rebuilding from the logs", self._checkpoint_path)
            return False
        if not isinstance(saved, dict) or saved.get("key") != self._key():
            return False
        tails = ((self._records, saved["records"]), (self._labels, saved["labels"]))
        for tail, offsets in tails:
            for name, offset in offsets.items():
                path = tail.directory / name
                if not path.is_file() or path.stat().st_size < offset:
                    return False
        for tail, offsets in tails:
            tail.offsets = {tail.directory / name: offset for name, offset in offsets.items()}
        self.monitor = saved["monitor"]
        return True

    def checkpoint(self) -> None:
        """Write the monitor and the logs' offsets (by file name: a copied home resumes too)."""
        saved = {"key": self._key(), "monitor": self.monitor,
                 "records": {path.name: offset for path, offset in self._records.offsets.items()},
                 "labels": {path.name: offset for path, offset in self._labels.offsets.items()}}

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                pickle.dump(saved, handle, protocol=pickle.HIGHEST_PROTOCOL)

        atomic_write(self._checkpoint_path, write)
        self._checkpointed = time.monotonic()

    def step(self) -> None:
        """One pass: read what is new, update the monitor, write ``state.json`` and ``alerts.jsonl``."""
        before = len(self.monitor.alerts)  # closing windows on new records raises alerts too
        self.monitor.add_records(_time_ordered(self._records.streams()))
        labels, watermark = [], None
        for raw in self._labels.read():
            line = json.loads(raw)
            if "watermark_s" in line:
                watermark = max(watermark or float("-inf"), float(line["watermark_s"]))
            else:
                labels.append(line)
        self.monitor.add_labels(labels, watermark)
        state = self.monitor.state()
        state["updated_at"] = time.time()
        atomic_write_json(self.out_dir / "state.json", state)
        if len(self.monitor.alerts) != before or not (self.out_dir / "alerts.jsonl").exists():
            text = "".join(json.dumps(a) + "\n" for a in self.monitor.alerts)

            def write(tmp: Path) -> None:
                tmp.write_text(text, encoding="utf-8")

            atomic_write(self.out_dir / "alerts.jsonl", write)
        if time.monotonic() - self._checkpointed >= self.checkpoint_s:
            self.checkpoint()


def _run_passes(passes: MonitorPasses, interval: float, stop: Any, parent: int) -> None:
    """The monitor process: a pass every ``interval`` seconds until ``stop`` is set (then a last one) or
    the serving process that started it is gone."""
    # Serving comes first: a pass that has a backlog to read (a restart on a long log) must not take
    # the cores the requests need.
    os.nice(10)
    passes.resume()
    while not stop.wait(interval):
        if os.getppid() != parent:
            return  # the service died without closing us: nothing left to publish for
        try:
            passes.step()
        except Exception:  # the service keeps serving; the next pass retries
            log.exception("monitor pass failed")
    passes.step()  # publish what arrived since the last pass
    passes.checkpoint()  # so that the next start goes on from here


class MonitorRunner:
    """Runs :class:`MonitorPasses` every ``interval`` seconds in a child process beside the service.

    A pass decodes every new feature-log line in Python (~30 µs a record): in the serving process it
    held the GIL for ~15 ms a second at 500 req/s and was the whole p99 tail of a 1 ms service
    (benchmarks/RESULTS.md). In its own process it costs requests nothing; its inputs are files and
    its output is ``state.json``, so nothing else crosses. The process is started with ``spawn``,
    stopped by :meth:`close` after a last pass, and exits by itself if the serving process dies.
    """

    def __init__(self, monitor: OnlineMonitor, feature_log_dir: Path, label_dir: Path, out_dir: Path,
                 interval: float = 1.0) -> None:
        self.out_dir = out_dir
        passes = MonitorPasses(monitor, feature_log_dir, label_dir, out_dir)
        self._lock_file = open(out_dir / "monitor.lock", "a")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.active = True
        except BlockingIOError:
            self.active = False  # another worker process runs the monitor
            self._lock_file.close()
            return
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._process = context.Process(target=_run_passes, args=(passes, interval, self._stop, os.getpid()),
                                        name="mlsd-monitor", daemon=True)
        self._process.start()

    def close(self) -> None:
        """Stop the monitor process after its last pass (everything logged so far is published)."""
        if not self.active:
            return
        self.active = False
        self._stop.set()
        self._process.join(timeout=30)
        if self._process.is_alive():
            log.warning("the monitor process did not stop within 30 s: terminated")
            self._process.terminate()
            self._process.join()
        self._lock_file.close()


def read_state(out_dir: Path) -> dict[str, Any] | None:
    """The latest published monitor state, or None before the first pass."""
    try:
        data: dict[str, Any] = json.loads((out_dir / "state.json").read_text())
        return data
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class MonitorCollector(Collector):
    """Prometheus view of the published state: latest drift per column, alerts, online metrics per arm."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        state = read_state(self.out_dir)
        if state is None:
            return
        alerts = CounterMetricFamily("mlsd_drift_alerts", "Drift alerts raised, by column", labels=["column"])
        counts: dict[str, int] = {}
        for alert in state["alerts"]:
            counts[alert["column"]] = counts.get(alert["column"], 0) + 1
        for column, n in sorted(counts.items()):
            alerts.add_metric([column], n)
        yield alerts
        windows = state["windows"]
        if windows:
            latest = windows[-1]
            for stat in ("psi", "js"):
                gauge = GaugeMetricFamily(f"mlsd_drift_{stat}", f"{stat} of the last closed window", labels=["column"])
                for column, d in latest["drift"].items():
                    gauge.add_metric([column], float(d[stat]))
                yield gauge
        labelled = [w for w in windows if w.get("labels")]
        if labelled:
            for metric in ("rate", "calibration", "ne", "auc"):
                gauge = GaugeMetricFamily(f"mlsd_online_{metric}", f"online {metric} of the last labelled window",
                                          labels=["arm"])
                for arm, values in labelled[-1]["labels"].items():
                    if values.get(metric) is not None:
                        gauge.add_metric([arm], float(values[metric]))
                yield gauge
        yield GaugeMetricFamily("mlsd_monitor_records", "feature-log records monitored", value=state["records"])
