"""The dead-letter file: every rejected event with its reason, appended durably as JSON lines.

A reject is written once: the same record from the same source and row, with the same problem,
re-ingested (a retried batch, a file ingested twice) is recognized and not written again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlsd.core.atomic import append_line_durably
from mlsd.events.schema import Reject


class DeadLetterFile:
    """Append-only JSONL of rejects; written (and fsynced) before the batch is acknowledged."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._seen: set[bytes] | None = None  # keys of the rejects in the file, read on first write

    @staticmethod
    def _key(entry: dict[str, Any]) -> bytes:
        identity = {k: entry.get(k) for k in ("source", "row", "field", "reason", "record")}
        return hashlib.blake2b(json.dumps(identity, sort_keys=True, default=str).encode(), digest_size=16).digest()

    def write(self, rejects: Iterable[Reject], source: str) -> int:
        """Append the rejects not already in the file; returns how many were given."""
        if self._seen is None:
            self._seen = {self._key(entry) for entry in self}
        stamp = datetime.now(UTC).isoformat()
        lines, given = [], 0
        for r in rejects:
            given += 1
            entry = {"source": source, "row": r.row, "field": r.field, "reason": r.reason, "record": r.record}
            key = self._key(entry)
            if key not in self._seen:
                self._seen.add(key)
                lines.append(json.dumps({**entry, "rejected_at": stamp}))
        if lines:
            append_line_durably(self.path, "\n".join(lines))
        return given

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)

    def __len__(self) -> int:
        return sum(1 for _ in self)
