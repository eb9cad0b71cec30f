"""Events: validation with named fields and rows, dead letters, dedup, durability under kill -9, replay."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mlsd.core.errors import MlsdError
from mlsd.events import DeadLetterFile, EmbeddedStream, EventLog, EventSchema, Ingestor, RedisStream, replay

CLICKS = EventSchema(
    "clicks",
    {"ip": pa.int64(), "app": pa.int32(), "click_time": pa.string(), "attributed_time": pa.string(),
     "is_attributed": pa.int8()},
    timestamp_field="click_time",
    optional=frozenset({"attributed_time"}),
)
GOOD = {"ip": 1, "app": 2, "click_time": "2017-11-07 09:30:38", "is_attributed": 0}


def test_bad_events_are_rejected_with_field_and_row_and_the_rest_goes_in(tmp_path: Path) -> None:
    ingestor = Ingestor(EventLog(tmp_path, CLICKS))
    records = [
        GOOD,
        GOOD | {"ip": "not-a-number"},
        GOOD | {"click_time": "yesterday-ish"},
        GOOD | {"click_time": "2999-01-01 00:00:00"},
        {k: v for k, v in GOOD.items() if k != "app"},
        GOOD | {"colour": "red"},
        GOOD | {"ip": 5, "app": 3},
    ]
    report = ingestor.ingest_records(records, "unit")
    assert (report.accepted, report.rejected) == (2, 5)
    letters = list(ingestor.dead_letters)
    assert [(d["row"], d["field"]) for d in letters] == [
        (2, "ip"), (3, "click_time"), (4, "click_time"), (5, "app"), (6, "colour")]
    assert "expected int64, got 'not-a-number'" in letters[0]["reason"]
    assert "in the future" in letters[2]["reason"]
    assert letters[0]["record"]["ip"] == "not-a-number"
    assert len(ingestor.log) == 2


def test_csv_rows_are_numbered_like_the_file(tmp_path: Path) -> None:
    csv = tmp_path / "clicks.csv"
    csv.write_text("ip,app,click_time,attributed_time,is_attributed\n"
                   "1,2,2017-11-07 09:30:38,,0\n1,x,2017-11-07 09:30:39,,0\n2,2,2017-11-07 09:31:00,,1\n")
    ingestor = Ingestor(EventLog(tmp_path / "log", CLICKS))
    report = ingestor.ingest_file(csv, chunk_rows=1)
    assert (report.accepted, report.rejected) == (2, 1)
    assert report.reject_samples == ["row 2: field 'app': expected int32, got 'x'"]


def test_reingesting_a_file_adds_nothing_even_with_identical_rows(tmp_path: Path) -> None:
    csv = tmp_path / "clicks.csv"
    csv.write_text("ip,app,click_time,attributed_time,is_attributed\n" + "1,2,2017-11-07 09:30:38,,0\n" * 3)
    log = EventLog(tmp_path / "log", CLICKS)
    first = Ingestor(log).ingest_file(csv, chunk_rows=2)
    second = Ingestor(log).ingest_file(csv)
    assert (first.accepted, second.accepted, second.duplicates) == (3, 0, 3)
    assert len(log) == 3


def test_log_reopens_with_its_dedup_index_and_single_writer(tmp_path: Path) -> None:
    log = EventLog(tmp_path, CLICKS)
    Ingestor(log).ingest_records([GOOD], "a")
    with pytest.raises(MlsdError, match="already open for writing"):
        EventLog(tmp_path, CLICKS)
    log.close()
    reopened = EventLog(tmp_path, CLICKS)
    assert Ingestor(reopened).ingest_records([GOOD], "again").duplicates == 1


def test_compaction_keeps_every_event_once(tmp_path: Path) -> None:
    log = EventLog(tmp_path, CLICKS)
    ingestor = Ingestor(log)
    for i in range(6):
        ingestor.ingest_records([GOOD | {"ip": i}], f"batch{i}")
    assert log.compact() == 1
    assert sorted(log.read().column("ip").to_pylist()) == list(range(6))
    assert len(log.segment_paths()) == 1
    # the merged files stay one compaction longer (for readers of the previous manifest), then go
    ingestor.ingest_records([GOOD | {"ip": 6}], "batch6")
    log.compact()
    on_disk = {p.name for p in (tmp_path / "segments").iterdir()}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == {s["file"] for s in manifest["segments"]} | set(manifest["retired"])
    assert len(on_disk) == 3


WRITER = """
import sys, pyarrow as pa
from mlsd.events import EventLog, Ingestor
from tests.test_events import CLICKS, GOOD
ingestor = Ingestor(EventLog(sys.argv[1], CLICKS))
batch = 0
while True:
    records = [GOOD | {"ip": batch * 100 + i} for i in range(100)]
    ingestor.ingest_records(records, "writer")
    print(batch, flush=True)  # acknowledged: every event of this batch is durable
    batch += 1
"""


@pytest.mark.slow
def test_kill_9_mid_ingest_loses_no_acknowledged_event(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    for attempt in range(3):
        log_dir = tmp_path / f"log{attempt}"
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(log_dir)], cwd=root,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        acked = []
        deadline = time.monotonic() + 60
        while len(acked) < 5 + 7 * attempt and time.monotonic() < deadline:
            acked.append(int(proc.stdout.readline()))
        time.sleep(0.013 * attempt)  # land the kill at different points of the write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        log = EventLog(log_dir, CLICKS)
        ips = log.read().column("ip").to_pylist()
        assert len(ips) == len(set(ips)), "an event is in the log twice"
        expected = {b * 100 + i for b in acked for i in range(100)}
        assert expected <= set(ips), "an acknowledged event is missing"
        assert len(ips) % 100 == 0, "a batch is in the log partially"
        log.close()


def test_replay_is_in_event_time_order_and_paced(tmp_path: Path) -> None:
    log = EventLog(tmp_path, CLICKS)
    times = ["2017-11-07 09:30:40", "2017-11-07 09:30:38", "2017-11-07 09:30:39", "2017-11-07 09:30:38"]
    Ingestor(log).ingest_records([GOOD | {"ip": i, "click_time": t} for i, t in enumerate(times)], "x")
    rows = pa.Table.from_batches(list(replay(log, batch_rows=1)))
    stamps = pc.cast(rows.column("click_time"), pa.int64()).to_pylist()
    assert stamps == sorted(stamps)
    assert rows.num_rows == 4
    started = time.monotonic()
    assert sum(b.num_rows for b in replay(log, speed=10.0, batch_rows=1)) == 4
    assert 0.18 <= time.monotonic() - started < 2.0  # 2 s of event time at 10x


def _consume_with_crash(transport: EmbeddedStream | RedisStream, log: EventLog) -> None:
    transport.ensure_group("ingest")
    transport.publish([GOOD | {"ip": i} for i in range(50)] + [GOOD | {"ip": "bad"}])
    ingestor = Ingestor(log)
    # A consumer that ingested a batch and died before acknowledging it:
    crashed = transport.read("ingest", "dead", 20)
    ingestor.ingest_messages(crashed, "dead")
    time.sleep(0.05)
    report = ingestor.consume(transport, "ingest", "alive", batch=7, block_ms=10, claim_idle_ms=10)
    assert report.duplicates == 20
    assert report.rejected == 1
    assert sorted(log.read().column("ip").to_pylist()) == list(range(50))
    assert transport.pending("ingest") == 0
    assert len(ingestor.dead_letters) == 1


def test_stream_ingest_survives_a_crashed_consumer_embedded(tmp_path: Path) -> None:
    _consume_with_crash(EmbeddedStream(), EventLog(tmp_path, CLICKS))


@pytest.mark.redis
def test_stream_ingest_survives_a_crashed_consumer_redis(tmp_path: Path, redis_url: str, namespace: str) -> None:
    stream = RedisStream(f"{namespace}:clicks", redis_url)
    try:
        _consume_with_crash(stream, EventLog(tmp_path, CLICKS))
    finally:
        stream.delete()


def test_dead_letter_lines_are_json(tmp_path: Path) -> None:
    ingestor = Ingestor(EventLog(tmp_path, CLICKS))
    ingestor.ingest_records([GOOD | {"is_attributed": "maybe"}], "x")
    line = (tmp_path / "deadletter.jsonl").read_text().strip()
    assert json.loads(line)["field"] == "is_attributed"


def test_dead_letters_are_written_once_when_a_batch_is_ingested_again(tmp_path: Path) -> None:
    records = [GOOD, GOOD | {"ip": "x"}, GOOD | {"app": "y"}]
    for _ in range(2):  # the same batch retried (or the same file ingested twice)
        ingestor = Ingestor(EventLog(tmp_path, CLICKS))
        report = ingestor.ingest_records(records, "file.csv")
        assert report.rejected == 2
        ingestor.log.close()
    assert len(DeadLetterFile(tmp_path / "deadletter.jsonl")) == 2  # before: 4 lines


def test_the_log_compacts_itself_as_small_pushes_accumulate(tmp_path: Path) -> None:
    log = EventLog(tmp_path, CLICKS)
    ingestor = Ingestor(log)
    for i in range(300):  # one event per push, as a service's intake takes them
        assert ingestor.ingest_records([GOOD | {"ip": i}], "push").accepted == 1
    segments = log.segment_paths()
    assert len(segments) <= 2 * EventLog.compact_every  # before: 300 segments, a manifest naming each
    assert log.read(["ip"]).num_rows == 300
    assert sorted(log.read(["ip"]).column("ip").to_pylist()) == list(range(300))
    log.close()
    again = EventLog(tmp_path, CLICKS, writer=False)
    assert again.read(["ip"]).num_rows == 300
    again.close()
