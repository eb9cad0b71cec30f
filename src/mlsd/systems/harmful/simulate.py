"""Harmful-content traffic for replay: the paper split's test posts, one request each, moderator decisions as labels.

Posts arrive ``INTERVAL_S`` apart in event time after the last training post, in the order the split
lists them; each request sends one post's text, and the label that comes back later is the
moderators' decision (the annotators' majority): 1 when it is hate speech (the *remove* class the
monitor's precision and recall follow), 0 otherwise. The build writes them to ``traffic.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from mlsd.core.atomic import atomic_write_json
from mlsd.core.errors import MlsdError
from mlsd.simulation.replay import JudgedTraffic, ReplayItem
from mlsd.system import Workspace
from mlsd.systems.harmful.data import HATE, Posts, Split

TRAFFIC_FILE = "traffic.json"
INTERVAL_S = 30


def write_traffic(ws: Workspace, posts: Posts, split: Split) -> int:
    """The test posts as ``[at_s, post_id, text, class]`` rows; returns how many."""
    start = int(posts.times_s.max()) + 3600
    rows = [[start + n * INTERVAL_S, int(posts.ids[i]), posts.texts[i], int(posts.labels[i])]
            for n, i in enumerate(split.test)]
    atomic_write_json(ws.home / TRAFFIC_FILE, {"posts": rows})
    return len(rows)


def _decision(label: float) -> Any:
    def outcome(answer: dict[str, Any]) -> tuple[float, list[Any]]:
        return label, []
    return outcome


class PostReplay(JudgedTraffic):
    """The held-out posts as replay requests."""

    def __init__(self, ws: Workspace, *, limit: int | None = None) -> None:
        path = ws.home / TRAFFIC_FILE
        if not path.exists():
            raise MlsdError(f"{path} not found: run `mlsd run harmful --home {ws.home}` first")
        self.posts: list[list[Any]] = json.loads(path.read_text())["posts"][:limit]
        self.drift_at_s = None

    @property
    def total(self) -> int:
        return len(self.posts)

    def __iter__(self) -> Iterator[ReplayItem]:
        for at_s, post_id, text, label in self.posts:
            body = {"items": [{"id": str(post_id), "text": text}], "timestamp": at_s}
            yield ReplayItem(float(at_s), body, _decision(1.0 if label == HATE else 0.0))
