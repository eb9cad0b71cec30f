"""PYMK traffic for replay: every user with held-out friendships asks for 10 suggestions; those friends are labels.

The held-out friendships are protocol (b)'s hidden 20%: the monitor's online nDCG@10, hit@10 and
MRR are that protocol's, measured through the service (the precomputed lists).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from mlsd.core.errors import MlsdError
from mlsd.simulation.replay import JudgedTraffic, ReplayItem, judged
from mlsd.system import Workspace
from mlsd.systems.pymk.build import TRAFFIC_FILE
from mlsd.systems.pymk.data import COLLECTED_S


class FriendReplay(JudgedTraffic):
    def __init__(self, ws: Workspace, *, limit: int | None = None, interval_s: float = 10.0) -> None:
        path = ws.home / TRAFFIC_FILE
        if not path.exists():
            raise MlsdError(f"{path} not found: run `mlsd run pymk --home {ws.home}` first")
        self.requests: list[list[Any]] = json.loads(path.read_text())["requests"][:limit]
        self.interval_s = interval_s
        self.drift_at_s = None

    @property
    def total(self) -> int:
        """Requests this source replays (the replay's progress bar shows an ETA)."""
        return len(self.requests)

    def __iter__(self) -> Iterator[ReplayItem]:
        for n, (user, friends) in enumerate(self.requests):
            at_s = COLLECTED_S + 3600 + n * self.interval_s
            yield ReplayItem(at_s, {"user_id": user, "k": 10, "timestamp": at_s},
                             judged([(str(f), 1.0) for f in friends]))
