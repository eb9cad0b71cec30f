"""A durable, append-only, deduplicating event log: Parquet segments plus an atomically replaced manifest.

An append writes a new segment (write, fsync, rename), then a new manifest (write, fsync, rename). A
segment becomes part of the log only when the manifest names it, so a process killed at any point
leaves the log readable with every acknowledged event present exactly once; stray segments from an
interrupted append are removed on the next open. One writer per log (an exclusive ``flock``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlsd.core.atomic import atomic_write, atomic_write_json
from mlsd.core.errors import MlsdError
from mlsd.events.schema import EVENT_ID, EventSchema

MANIFEST = "manifest.json"


def id_hashes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Stable 64-bit hashes of event ids (the dedup index holds these, 8 bytes per event)."""
    values = np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object)
    return pd.util.hash_array(values, categorize=False)


@dataclass(frozen=True)
class AppendResult:
    """What one append did: events written, and events dropped as already present."""

    appended: int
    duplicates: int


class EventLog:
    """The event log of one schema under ``root``; :meth:`append` returns only once the events are durable."""

    compact_every = 64  # appends between two compactions

    def __init__(self, root: str | os.PathLike[str], schema: EventSchema, *, writer: bool = True) -> None:
        self.root = Path(root)
        self.schema = schema
        self.segments_dir = self.root / "segments"
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        self._lock_handle: Any = None
        if writer:
            self._lock_handle = open(self.root / ".writer.lock", "w")  # noqa: SIM115 (held for life)
            try:
                fcntl.flock(self._lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise MlsdError(f"event log {self.root} is already open for writing by another process") from exc
        self._manifest = self._load_manifest()
        if writer:
            self._remove_strays()
        self._index = self._build_index()
        self._appends_since_compaction = 0

    # -- manifest ---------------------------------------------------------------------------------
    def _load_manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        if not path.exists():
            return {"schema": self.schema.name, "segments": [], "next_segment": 1}
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("schema") != self.schema.name:
            raise MlsdError(f"{self.root} holds events of schema {manifest.get('schema')!r}, not {self.schema.name!r}")
        return manifest

    def _remove_strays(self) -> None:
        known = {s["file"] for s in self._manifest["segments"]}
        for path in self.segments_dir.iterdir():
            if path.name not in known:
                path.unlink()

    def _build_index(self) -> np.ndarray:
        parts = [id_hashes(pq.read_table(p, columns=[EVENT_ID]).column(EVENT_ID)) for p in self.segment_paths()]
        return np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.uint64)

    # -- writing ----------------------------------------------------------------------------------
    def append(self, table: pa.Table) -> AppendResult:
        """Append validated events (``schema.stored_schema``), skipping ids already in the log or repeated."""
        table = table.select(self.schema.stored_schema.names).cast(self.schema.stored_schema)
        if table.num_rows == 0:
            return AppendResult(0, 0)
        hashes = id_hashes(table.column(EVENT_ID))
        _, first = np.unique(hashes, return_index=True)
        keep = np.zeros(len(hashes), dtype=bool)
        keep[first] = True
        if len(self._index):
            pos = np.searchsorted(self._index, hashes)
            pos = np.minimum(pos, len(self._index) - 1)
            keep &= self._index[pos] != hashes
        fresh = table.filter(pa.array(keep))
        if fresh.num_rows:
            self._write_segment(fresh)
            added = np.sort(hashes[keep])
            self._index = np.insert(self._index, np.searchsorted(self._index, added), added)  # O(n), stays sorted
            self._appends_since_compaction += 1
            if self._appends_since_compaction >= self.compact_every:
                self._appends_since_compaction = 0
                self.compact()
        return AppendResult(fresh.num_rows, table.num_rows - fresh.num_rows)

    def _write_segment(self, table: pa.Table) -> None:
        number = int(self._manifest["next_segment"])
        name = f"seg-{number:08d}.parquet"
        atomic_write(self.segments_dir / name, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
        ts = pc.cast(table.column(self.schema.timestamp_field), pa.int64())
        entry = {"file": name, "rows": table.num_rows, "min_ts_us": pc.min(ts).as_py(), "max_ts_us": pc.max(ts).as_py()}
        manifest = dict(self._manifest)
        manifest["segments"] = [*self._manifest["segments"], entry]
        manifest["next_segment"] = number + 1
        atomic_write_json(self.root / MANIFEST, manifest)
        self._manifest = manifest

    def compact(self, target_rows: int = 2_000_000) -> int:
        """Merge small segments into larger ones (atomically); returns the number of segments after.

        Called by :meth:`append` every ``compact_every`` appends that wrote a segment, so a log fed by
        many small pushes keeps a few segments and a short manifest (each append rewrites it): the
        append's cost stays flat instead of growing with the number of pushes so far.
        """
        small = [s for s in self._manifest["segments"] if s["rows"] < target_rows // 4]
        if len(small) < 2:
            return len(self._manifest["segments"])
        merged = pa.concat_tables([pq.read_table(self.segments_dir / s["file"]) for s in small])
        number = int(self._manifest["next_segment"])
        name = f"seg-{number:08d}.parquet"
        atomic_write(self.segments_dir / name, lambda tmp: pq.write_table(merged, tmp, compression="zstd"))
        entry = {"file": name, "rows": merged.num_rows, "min_ts_us": min(s["min_ts_us"] for s in small),
                 "max_ts_us": max(s["max_ts_us"] for s in small)}
        names = {s["file"] for s in small}
        manifest = dict(self._manifest)
        manifest["segments"] = [s for s in self._manifest["segments"] if s["file"] not in names] + [entry]
        manifest["next_segment"] = number + 1
        # Merged segments are deleted one compaction later: a reader in another process that loaded the
        # previous manifest can still open every file it names.
        previous = manifest.get("retired", [])
        manifest["retired"] = sorted(names)
        atomic_write_json(self.root / MANIFEST, manifest)
        self._manifest = manifest
        for old in previous:
            (self.segments_dir / old).unlink(missing_ok=True)
        return len(manifest["segments"])

    # -- reading ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the manifest (for a reader following a log another process writes)."""
        self._manifest = self._load_manifest()
        self._index = self._build_index()

    def segment_paths(self) -> list[Path]:
        return [self.segments_dir / s["file"] for s in self._manifest["segments"]]

    def __len__(self) -> int:
        return sum(int(s["rows"]) for s in self._manifest["segments"])

    def __contains__(self, event_id: str) -> bool:
        h = id_hashes(pa.array([event_id]))[0]
        pos = int(np.searchsorted(self._index, h))
        return pos < len(self._index) and self._index[pos] == h

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """All events, in append order."""
        paths = self.segment_paths()
        if not paths:
            return self.schema.stored_schema.empty_table()
        return pa.concat_tables([pq.read_table(p, columns=columns) for p in paths])

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        for path in self.segment_paths():
            yield from pq.ParquetFile(path).iter_batches(columns=columns)

    def close(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
