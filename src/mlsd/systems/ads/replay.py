"""Replay sources of the ads system: the held-out day of the click log, or live marketplace traffic.

Both start a stream processor on the home's online store, emptied and rebuilt from every logged event
before the replay starts, so the service reads features exactly as fresh as a live system would (the
store filled by ``mlsd run`` as of the last click would let the replayed day see its own future).

* :class:`ClickLogReplay` (real TalkingData): each held-out click is one request with its logged
  ad as the only candidate; its label is the logged download. Drift: from ``drift_at_s`` on, a share
  of clicks come from a new popular app (an app id the model never saw).
* :class:`MarketplaceReplay` (generated): each request offers ``candidates`` random ads; the service's
  top-ranked ad is shown and the click is drawn from the hidden model, so arms of an A/B test get
  different clicks. Drift: from ``drift_at_s`` on, a share of traffic comes from one device's users
  (a shift in the traffic mix).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlsd.datasets import TALKINGDATA_SCHEMA
from mlsd.datasets.marketplace import START, AdMarketplace, hour_at, requests, requests_in
from mlsd.events import EventLog
from mlsd.events.replay import replay as replay_log
from mlsd.features import FeatureStore, OfflineStore, open_online_store
from mlsd.features.streaming import StreamProcessor
from mlsd.simulation.replay import ReplayItem
from mlsd.systems.ads.features import click_views

NEW_APP = 2_000_000  # an app id no training row has
_START_S = float(START.astype("datetime64[us]").astype(np.int64)) / 1e6


class _StreamedReplay:
    """The home's click log, views and a stream processor warmed up to ``start_us``."""

    def __init__(self, home: Path, start_us: int | None) -> None:
        self.log = EventLog(Path(home) / "events" / "clicks", TALKINGDATA_SCHEMA, writer=False)
        views = click_views(self.log)
        self.store = FeatureStore(open_online_store(Path(home) / "online.db"), OfflineStore(), views)
        self.processor: StreamProcessor = self.store.stream_processor([v.name for v in views])
        # Start from nothing: `mlsd run` materialized the store as of the log's last click, which for a
        # held-out period inside the log is the future. The warm-up rebuilds it as of ``start_us``.
        for view in views:
            self.store.online.delete_view(view.name)
        for batch in replay_log(self.log, batch_rows=50_000, end_us=start_us):
            self.processor.process(pa.Table.from_batches([batch]))
        if start_us is not None:
            self.processor.advance(start_us)

    def advance(self, watermark_s: float) -> None:
        """The stream's clock to just before ``watermark_s``: windows hold the events in ``[t - W, t)``."""
        self.processor.advance(round(watermark_s * 1e6) - 1)

    def close(self) -> None:
        self.store.online.close()
        self.log.close()


class ClickLogReplay(_StreamedReplay):
    """The click log's last calendar day (the test period), one request per click."""

    def __init__(self, home: Path, *, drift_at_s: float | None = None, drift_share: float = 0.3,
                 limit: int | None = None, seed: int = 0) -> None:
        log = EventLog(Path(home) / "events" / "clicks", TALKINGDATA_SCHEMA, writer=False)
        last = pc.max(pc.cast(log.read(["click_time"]).column("click_time"), pa.int64())).as_py()
        log.close()
        day_us = 86_400_000_000
        self.start_us = last - last % day_us
        super().__init__(home, self.start_us)
        self.drift_at_s, self.drift_share, self.limit = drift_at_s, drift_share, limit
        self.rng = np.random.default_rng(seed)

    @property
    def start_s(self) -> float:
        return float(self.start_us) / 1e6

    def __iter__(self) -> Iterator[ReplayItem]:
        sent = 0
        for batch in replay_log(self.log, batch_rows=10_000, start_us=self.start_us):
            stamps = pc.cast(batch.column("click_time"), pa.int64()).to_numpy() / 1e6
            for at, row in zip(stamps.tolist(), batch.to_pylist(), strict=True):
                if self.drift_at_s is not None and at >= self.drift_at_s and self.rng.random() < self.drift_share:
                    row["app"] = NEW_APP
                body = {"context": {"ip": row["ip"], "device": row["device"], "os": row["os"]},
                        "candidates": [{"app": row["app"], "channel": row["channel"]}]}
                yield ReplayItem(at, body, _logged(float(row["is_attributed"]), row))
                sent += 1
                if self.limit is not None and sent >= self.limit:
                    return

    def process_stream(self, rows: list[dict[str, Any]], watermark_s: float) -> None:
        if rows:
            self.processor.process(pa.Table.from_pylist(rows, schema=self.log.schema.stored_schema))
        self.advance(watermark_s)


def _logged(label: float, row: dict[str, Any]) -> Callable[[dict[str, Any]], tuple[float, list[dict[str, Any]]]]:
    """The outcome of a logged click: its own label and event, whatever the service answered."""
    return lambda _answer: (label, [row])


@dataclass
class MarketplaceTraffic:
    """How much live traffic to generate and when the traffic mix shifts."""

    rows_per_day: float = 250_000 / 7  # the click log's traffic rate, so count features keep their scale
    day: float = 7.0  # days after the marketplace's start (the click log covers days 0-6)
    days: float = 1 / 3
    candidates: int = 20
    drift_at_hours: float | None = None  # None: no drift
    drift_share: float = 0.6
    drift_device: int = 2
    seed: int = 11


class MarketplaceReplay(_StreamedReplay):
    """Live requests to the generated marketplace; the shown ad's click comes from the hidden model."""

    def __init__(self, home: Path, world: AdMarketplace, traffic: MarketplaceTraffic | None = None,
                 limit: int | None = None) -> None:
        traffic = traffic or MarketplaceTraffic()
        self.start_s = _START_S + traffic.day * 86400
        super().__init__(home, round(self.start_s * 1e6))
        self.world, self.traffic = world, traffic
        self.drift_at_s = None if traffic.drift_at_hours is None else self.start_s + traffic.drift_at_hours * 3600
        self.rng = np.random.default_rng(traffic.seed)
        self.requests = requests_in(traffic.rows_per_day, traffic.day, traffic.days)
        self.limit = limit  # the first ``limit`` requests of the day (``mlsd replay --limit``)

    def __iter__(self) -> Iterator[ReplayItem]:
        w, t = self.world, self.traffic
        plan = requests(w, self.requests, start_day=t.day, days=t.days, candidates=t.candidates, seed=t.seed)
        shifted_users = np.flatnonzero(w.device == t.drift_device)
        # Cumulative activity once, so drawing a shifted user per request is a binary search.
        cumulative = np.cumsum(w.activity[shifted_users])
        cumulative /= cumulative[-1]
        for i in range(self.requests if self.limit is None else min(self.limit, self.requests)):
            seconds = float(plan.seconds[i])
            # The click log keeps whole seconds: a request at 12.7 s whose click is logged at 12 s would
            # precede its own event, and the point-in-time store would count that click in its features.
            at = _START_S + float(int(seconds))
            user = int(plan.user[i])
            if self.drift_at_s is not None and at >= self.drift_at_s and self.rng.random() < t.drift_share:
                pick = int(np.searchsorted(cumulative, self.rng.random(), side="right"))
                user = int(shifted_users[min(pick, len(shifted_users) - 1)])
            publisher = int(plan.publisher[i])
            context = {"ip": user, "device": int(w.device[user]),
                       "os": int(w.user_segment[user] * 5 + w.age_group[user])}
            body = {"context": context,
                    "candidates": [{"app": int(ad), "channel": publisher} for ad in plan.candidates[i]]}
            yield ReplayItem(at, body, self._outcome(user, publisher, seconds, context))

    def _outcome(self, user: int, publisher: int, seconds: float, context: dict[str, int]) -> Any:
        def outcome(answer: dict[str, Any]) -> tuple[float, list[dict[str, Any]]]:
            ad = int(answer["ranked"][0]["app"])  # the top-ranked ad is the one shown
            p = self.world.probability(np.array([user]), np.array([ad]), np.array([publisher]),
                                       hour_at(np.array([seconds])))[0]
            click = float(self.rng.random() < p)
            stamp = (START + np.timedelta64(int(seconds), "s")).astype("datetime64[s]").astype(str).replace("T", " ")
            row = {"ip": str(user), "app": str(ad), "device": str(context["device"]), "os": str(context["os"]),
                   "channel": str(publisher), "click_time": stamp, "attributed_time": None,
                   "is_attributed": str(int(click))}
            return click, [row]

        return outcome

    def process_stream(self, rows: list[dict[str, Any]], watermark_s: float) -> None:
        if rows:
            self.processor.process_records(rows)
        self.advance(watermark_s)
