"""Listings traffic for replay: SR-GNN's test sessions click by click, each next click as the label.

Every click of a test session that has a next click is one request (its session, item and event
time), in event-time order across sessions; the next item comes back as the request's relevant
label. These are exactly the offline test prefixes, so the monitor's online hit@20 and MRR are the
offline HR@20 and MRR@20 measured through the service. The build writes them to ``traffic.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from mlsd.core.atomic import atomic_write_json
from mlsd.core.errors import MlsdError
from mlsd.simulation.replay import JudgedTraffic, ReplayItem, judged
from mlsd.system import Workspace
from mlsd.systems.listings.data import Sessions

TRAFFIC_FILE = "traffic.json"


def write_traffic(ws: Workspace, sessions: Sessions) -> int:
    """The test sessions' clicks that have a next click, in event-time order; returns how many."""
    clicks = []
    for session_id, items, times in zip(sessions.test_ids, sessions.test, sessions.test_times, strict=True):
        raw = sessions.raw(items)
        clicks += [[times[j], session_id, j, raw[j], raw[j + 1]] for j in range(len(raw) - 1)]
    clicks.sort()
    atomic_write_json(ws.home / TRAFFIC_FILE, {"clicks": clicks})
    return len(clicks)


class SessionReplay(JudgedTraffic):
    """The held-out sessions' clicks as replay requests."""

    def __init__(self, ws: Workspace, *, limit: int | None = None) -> None:
        path = ws.home / TRAFFIC_FILE
        if not path.exists():
            raise MlsdError(f"{path} not found: run `mlsd run listings --home {ws.home}` first")
        self.clicks: list[list[Any]] = json.loads(path.read_text())["clicks"][:limit]
        self.drift_at_s = None

    @property
    def total(self) -> int:
        """Requests this source replays (the replay's progress bar shows an ETA)."""
        return len(self.clicks)

    def __iter__(self) -> Iterator[ReplayItem]:
        for at_s, session_id, _, item, following in self.clicks:
            yield ReplayItem(float(at_s), {"session_id": session_id, "item_id": item, "timestamp": at_s},
                             judged([(str(following), 1.0)]))
