"""Search traffic for replay: fold 1's test part (S5), one request per query, judged relevance as labels.

Queries arrive in order, ``interval_s`` apart in event time from the collection's time; each sends
its documents by id (features from the online store) and, once answered, its judged relevance for
every document with a grade above zero comes back as the labels of the shown items.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow.compute as pc

from mlsd.events import EventLog
from mlsd.simulation.replay import JudgedTraffic, ReplayItem, judged
from mlsd.system import Workspace
from mlsd.systems.search.data import COLLECTED_S, FOLDS, JUDGMENT_SCHEMA


class QueryReplay(JudgedTraffic):
    """The held-out queries of fold 1 as replay requests."""

    def __init__(self, ws: Workspace, *, interval_s: float = 60.0, limit: int | None = None,
                 start_s: float = COLLECTED_S + 7200) -> None:
        test_part = FOLDS[0].parts[2]
        with EventLog(ws.events("judgments"), JUDGMENT_SCHEMA, writer=False) as log:
            table = log.read(["query_id", "doc_id", "part", "label"])
        table = table.filter(pc.equal(table["part"], test_part))
        self.queries = table["query_id"].to_numpy()
        self.docs = table["doc_id"].to_numpy(zero_copy_only=False)
        self.labels = table["label"].to_numpy()
        self.order = list(dict.fromkeys(self.queries.tolist()))[:limit]
        self.interval_s, self.start_s = interval_s, start_s
        self.drift_at_s = None

    @property
    def total(self) -> int:
        """Requests this source replays (the replay's progress bar shows an ETA)."""
        return len(self.order)

    def __iter__(self) -> Iterator[ReplayItem]:
        for n, query in enumerate(self.order):
            rows = np.flatnonzero(self.queries == query)
            relevant = [(str(self.docs[i]), float(self.labels[i])) for i in rows if self.labels[i] > 0]
            body: dict[str, Any] = {"query_id": int(query), "documents": [{"doc_id": str(self.docs[i])} for i in rows]}
            yield ReplayItem(self.start_s + n * self.interval_s, body, judged(relevant))
