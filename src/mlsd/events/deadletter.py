"""The dead-letter file: every rejected event with its reason, appended durably as JSON lines."""

from __future__ import annotations

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

    def write(self, rejects: Iterable[Reject], source: str) -> int:
        stamp = datetime.now(UTC).isoformat()
        lines = [
            json.dumps({"source": source, "row": r.row, "field": r.field, "reason": r.reason,
                        "record": r.record, "rejected_at": stamp})
            for r in rejects
        ]
        if lines:
            append_line_durably(self.path, "\n".join(lines))
        return len(lines)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)

    def __len__(self) -> int:
        return sum(1 for _ in self)
