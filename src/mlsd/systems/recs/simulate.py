"""Recommendation traffic for replay: protocol B's held-out period, one request per user, later ratings as labels.

Each user who rates after the cut-off asks for 10 movies at the time of their first rating there;
every movie they rate in the held-out period is a relevant item (grade 1: a rating is a watch), sent
back as labels of the request once the label delay has passed. The online nDCG@10 this yields is
protocol B's offline metric measured through the service. Ratings are not streamed back into the
service during the replay: each user is asked once, before any of their held-out ratings.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow.parquet as pq

from mlsd.core.errors import MlsdError
from mlsd.simulation.replay import JudgedTraffic, ReplayItem, judged
from mlsd.system import Workspace
from mlsd.systems.recs.build import HELD_OUT_FILE, SERVING


class HeldOutReplay(JudgedTraffic):
    """Users of the held-out period, in the order of their first held-out rating."""

    def __init__(self, ws: Workspace, *, k: int = 10, limit: int | None = None) -> None:
        path = ws.home / SERVING / HELD_OUT_FILE
        if not path.exists():
            raise MlsdError(f"{path} not found: run `mlsd run recs --home {ws.home}` first")
        frame = pq.read_table(path).to_pandas().sort_values(["timestamp", "user_id", "item_id"], kind="stable")
        first = frame.groupby("user_id", sort=False)["timestamp"].min().sort_values(kind="stable")
        self.users = first.index.to_numpy()[:limit]
        self.first_s = first.to_numpy()[:limit]
        self.rated = frame.groupby("user_id")["item_id"].agg(list).to_dict()
        self.k = k
        self.drift_at_s = None

    @property
    def total(self) -> int:
        """Requests this source replays (the replay's progress bar shows an ETA)."""
        return len(self.users)

    def __iter__(self) -> Iterator[ReplayItem]:
        for user, at_s in zip(self.users.tolist(), self.first_s.tolist(), strict=True):
            rated = [(str(item), 1.0) for item in dict.fromkeys(self.rated[user])]
            yield ReplayItem(float(at_s), {"user_id": int(user), "k": self.k}, judged(rated))
