"""The feature-platform walkthrough on ad clicks: ingest -> offline training frame -> stream -> online.

Runs on the real TalkingData sample when a data directory has it, else on generated clicks of the same
shape. Each step prints what it did and what it measured; the summary lands in ``summary.json``.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from mlsd.core.errors import DataNotFoundError
from mlsd.core.timeutil import TIMESTAMP
from mlsd.datasets import TALKINGDATA_SCHEMA, locate, synthetic_clicks
from mlsd.events import EmbeddedStream, EventLog, Ingestor, replay
from mlsd.features import FeatureStore, OfflineStore, open_online_store
from mlsd.systems.ads.features import click_views


@dataclass
class Walkthrough:
    """Options of one run."""

    home: Path
    data: str | None = None
    progress: bool = True
    synthetic_rows: int = 200_000
    summary: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str) -> None:
        tqdm.write(text)

    def run(self) -> dict[str, Any]:
        if self.home.exists():
            shutil.rmtree(self.home)
        self.home.mkdir(parents=True)
        log = EventLog(self.home / "events" / "clicks", TALKINGDATA_SCHEMA)
        self._ingest(log)
        views = click_views(log)
        store = FeatureStore(open_online_store(self.home / "online.db"), OfflineStore(), views)
        self._training_frame(store, log)
        self._stream(store, log)
        self._check_online_equals_offline(store, log)
        log.close()
        (self.home / "summary.json").write_text(json.dumps(self.summary, indent=1))
        self.say(f"summary: {self.home / 'summary.json'}")
        return self.summary

    def _ingest(self, log: EventLog) -> None:
        ingestor = Ingestor(log)
        started = time.perf_counter()
        try:
            path = locate("talkingdata", self.data)["train_sample.csv"]
            self.summary["dataset"] = f"TalkingData AdTracking sample ({path})"
            report = ingestor.ingest_file(path, progress=self.progress)
            again = ingestor.ingest_file(path)
        except DataNotFoundError as exc:
            self.say(f"[1/5] no TalkingData sample ({exc}); using {self.synthetic_rows:,} generated clicks")
            self.summary["dataset"] = f"generated clicks ({self.synthetic_rows:,})"
            clicks = synthetic_clicks(self.synthetic_rows)
            report = ingestor.ingest_table(clicks, "generated")
            again = ingestor.ingest_table(clicks, "generated")
        seconds = time.perf_counter() - started
        self.say(f"[1/5] ingest: {report.accepted:,} events accepted, {report.rejected} rejected; "
                 f"re-ingest added {again.accepted} ({again.duplicates:,} duplicates skipped) in {seconds:.2f} s")
        self.summary["ingest"] = {"accepted": report.accepted, "rejected": report.rejected,
                                  "reingest_added": again.accepted, "seconds": round(seconds, 3)}

    def _training_frame(self, store: FeatureStore, log: EventLog) -> None:
        clicks = log.read(["event_id", "ip", "app", "device", "os", "channel", "click_time", "is_attributed"])
        labels = clicks.rename_columns([c if c != "click_time" else "event_timestamp" for c in clicks.column_names])
        started = time.perf_counter()
        path = self.home / "training_frame.parquet"
        rows = store.offline.to_parquet(labels, list(store.views.values()), path)
        seconds = time.perf_counter() - started
        self.say(f"[2/5] point-in-time training frame: {rows:,} rows x {len(store.views)} views in {seconds:.2f} s "
                 f"-> {path}")
        self.summary["training_frame"] = {"rows": rows, "seconds": round(seconds, 3), "path": str(path)}

    def _stream(self, store: FeatureStore, log: EventLog) -> None:
        stream = EmbeddedStream()
        processor = store.stream_processor(list(store.views))
        published = 0
        bar = tqdm(total=len(log), desc="[3/5] stream", unit=" events", disable=None if self.progress else True)
        started = time.perf_counter()
        for batch in replay(log, batch_rows=20_000):
            records = batch.to_pylist()  # click_time stays a datetime: the schema accepts typed timestamps
            stream.publish(records)
            processor.run(stream, "online", "walkthrough", batch=5000, block_ms=0, max_idle_polls=1)
            published += len(records)
            bar.update(len(records))
        bar.close()
        seconds = time.perf_counter() - started
        stats = processor.stats
        self.say(f"[3/5] stream processor: {stats.events:,} events -> {stats.writes:,} online writes in "
                 f"{seconds:.2f} s ({stats.events / seconds:,.0f} events/s incl. replay, validation and dedup)")
        self.summary["stream"] = {"events": stats.events, "online_writes": stats.writes,
                                  "seconds": round(seconds, 3), "events_per_s": round(stats.events / seconds)}

    def _check_online_equals_offline(self, store: FeatureStore, log: EventLog) -> None:
        """Online values after the stream must equal the offline definition evaluated just after the end."""
        clicks = log.read(["ip", "app", "device", "os", "channel", "click_time"])
        end = pc.max(pc.cast(clicks.column("click_time"), pa.int64())).as_py()
        at = end + 1
        sample = clicks.slice(0, min(2000, clicks.num_rows))
        entities = {k: sample.column(k).to_pylist() for k in ("ip", "app", "device", "os", "channel")}
        stamps = pa.array([at] * sample.num_rows, pa.int64()).cast(TIMESTAMP)
        labels = pa.table({**entities, "row": list(range(sample.num_rows)), "event_timestamp": stamps})
        offline = store.offline.to_table(labels, list(store.views.values())).sort_by("row")
        started = time.perf_counter()
        online = store.online_features(list(store.views), entities, at_us=at)
        read_ms = (time.perf_counter() - started) * 1000
        mismatches = 0
        for column, values in online.items():
            expected = offline.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
            mismatches += int((~np.isclose(values, expected, rtol=1e-9, equal_nan=True)).sum())
        cells = len(online) * sample.num_rows
        self.say(f"[4/5] online read of {sample.num_rows:,} entities x {len(online)} features: {read_ms:.1f} ms; "
                 f"online vs offline mismatches: {mismatches} of {cells:,}")
        self.summary["online_vs_offline"] = {"cells": cells, "mismatches": mismatches, "read_ms": round(read_ms, 2)}
        self.say("[5/5] done: the same definitions produced the training frame and the live online values")


def walkthrough_command(home: Path, data: str | None, *, progress: bool, synthetic_rows: int) -> None:
    """``mlsd walkthrough`` (registered under the ``mlsd.plugins.commands`` entry points)."""
    Walkthrough(home=home, data=data, progress=progress, synthetic_rows=synthetic_rows).run()
