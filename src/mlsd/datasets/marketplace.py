"""A generated ad marketplace with a known click model, for scale tests and experiments.

Users (segment, age group, device, activity), ads (category, quality), publishers (type, quality)
and a diurnal traffic pattern. The hidden click model has feature interactions (segment x category,
category x hour, device x publisher type), and every event carries its true click probability, so
the best achievable log loss is known. ``probability`` scores any (user, ad, publisher, hour), which
lets an experiment show a different ad and draw the click the user would really have made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from mlsd.core.timeutil import TIMESTAMP

START = np.datetime64("2026-01-05T00:00:00", "us")
CATEGORICAL = ("user_segment", "age_group", "device", "ad_id", "ad_category", "publisher_id", "publisher_type",
               "hour")


@dataclass
class AdMarketplace:
    """The hidden world; the same seed gives the same users, ads, publishers and click model."""

    seed: int = 0
    users: int = 50_000
    ads: int = 2_000
    publishers: int = 200
    base_logit: float = -4.2
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        r = self.rng
        self.user_segment = r.integers(0, 8, self.users)
        self.age_group = r.integers(0, 5, self.users)
        self.device = r.choice(3, self.users, p=[0.6, 0.3, 0.1])
        self.user_bias = r.normal(0, 0.4, self.users)
        self.activity = r.lognormal(0, 1.0, self.users)
        self.ad_category = r.integers(0, 12, self.ads)
        self.ad_quality = r.normal(0, 0.5, self.ads)
        self.publisher_type = r.integers(0, 6, self.publishers)
        self.publisher_quality = r.normal(0, 0.3, self.publishers)
        self.affinity = r.normal(0, 0.8, (8, 12))
        self.age_affinity = r.normal(0, 0.4, (5, 12))
        self.device_publisher = r.normal(0, 0.5, (3, 6))
        phase = r.uniform(0, 2 * np.pi, 12)
        hours = np.arange(24)
        self.hour_effect = 0.5 * np.sin(2 * np.pi * hours[None, :] / 24 + phase[:, None])

    def probability(self, user: np.ndarray, ad: np.ndarray, publisher: np.ndarray, hour: np.ndarray) -> np.ndarray:
        """True click probability of showing ``ad`` to ``user`` on ``publisher`` at ``hour`` (0-23)."""
        category = self.ad_category[ad]
        logit = (self.base_logit + self.user_bias[user] + self.ad_quality[ad] + self.publisher_quality[publisher]
                 + self.affinity[self.user_segment[user], category] + self.age_affinity[self.age_group[user], category]
                 + self.hour_effect[category, hour]
                 + self.device_publisher[self.device[user], self.publisher_type[publisher]])
        return np.asarray(1.0 / (1.0 + np.exp(-logit)))

    def features(self, user: np.ndarray, ad: np.ndarray, publisher: np.ndarray,
                 hour: np.ndarray) -> dict[str, np.ndarray]:
        """What a model may see about an impression (ids and attributes, never the hidden effects)."""
        return {"user_id": user, "user_segment": self.user_segment[user], "age_group": self.age_group[user],
                "device": self.device[user], "ad_id": ad, "ad_category": self.ad_category[ad],
                "publisher_id": publisher, "publisher_type": self.publisher_type[publisher], "hour": hour}

    def events(self, n: int, *, days: float = 7.0, seed: int = 1) -> pa.Table:
        """``n`` impressions in time order with features, ``p_true`` and the drawn ``click``."""
        r = np.random.default_rng(seed)
        user = r.choice(self.users, n, p=self.activity / self.activity.sum())
        ad = r.integers(0, self.ads, n)
        publisher = r.integers(0, self.publishers, n)
        seconds = diurnal_seconds(r, n, 0.0, days * 86400)
        hour = hour_at(seconds)
        p = self.probability(user, ad, publisher, hour)
        click = (r.random(n) < p).astype(np.int8)
        stamps = START + (seconds * 1e6).astype("timedelta64[us]")
        columns = {k: pa.array(v) for k, v in self.features(user, ad, publisher, hour).items()}
        return pa.table({"event_timestamp": pa.array(stamps).cast(TIMESTAMP), **columns,
                         "p_true": pa.array(p), "click": pa.array(click)})


@dataclass(frozen=True)
class Requests:
    """Ad requests: when, who, on which publisher, and the candidate ads (one row of ``candidates`` each)."""

    seconds: np.ndarray  # since START
    user: np.ndarray
    publisher: np.ndarray
    candidates: np.ndarray  # (n, k) ad ids


def diurnal_weight(hour: np.ndarray) -> np.ndarray:
    """Relative traffic by hour of day: more impressions in the evening."""
    return np.asarray(1 + 0.6 * np.sin(2 * np.pi * (np.asarray(hour) - 14) / 24))


def diurnal_seconds(r: np.random.Generator, n: int, start_s: float, span_s: float) -> np.ndarray:
    """``n`` sorted times in ``[start_s, start_s + span_s)`` following the diurnal traffic pattern."""
    seconds = np.sort(r.uniform(start_s, start_s + span_s, n * 2))
    weight = diurnal_weight(hour_at(seconds))
    seconds = seconds[r.random(n * 2) < weight / weight.max()]
    if seconds.size >= n:
        return np.sort(r.choice(seconds, n, replace=False))
    return np.sort(np.concatenate([seconds, r.uniform(start_s, start_s + span_s, n - seconds.size)]))


def requests_in(rows_per_day: float, start_day: float, days: float) -> int:
    """How many requests the diurnal pattern puts in ``days`` from ``start_day`` at ``rows_per_day``."""
    minutes = start_day * 1440 + np.arange(round(days * 1440))
    hours = np.arange(1440) // 60
    return round(float(rows_per_day * diurnal_weight(minutes // 60 % 24).sum() / diurnal_weight(hours).sum()))


def requests(world: AdMarketplace, n: int, *, start_day: float, days: float = 1.0, candidates: int = 20,
             seed: int = 2) -> Requests:
    """``n`` ad requests in time order over ``days`` from ``start_day``, each with random candidate ads."""
    r = np.random.default_rng(seed)
    seconds = diurnal_seconds(r, n, start_day * 86400, days * 86400)
    user = r.choice(world.users, n, p=world.activity / world.activity.sum())
    publisher = r.integers(0, world.publishers, n)
    return Requests(seconds, user, publisher, r.integers(0, world.ads, (n, candidates)))


def click_log(world: AdMarketplace, n: int, *, days: float = 7.0, seed: int = 1) -> pa.Table:
    """Impressions of randomly chosen ads in TalkingData's schema, so the ads system runs on them unchanged.

    ip = user, device = the user's device, os = segment x age group (a user attribute), app = ad,
    channel = publisher; ``is_attributed`` is the drawn click. Columns are text, as in the CSV.
    """
    events = world.events(n, days=days, seed=seed)
    user = events.column("user_id").to_numpy()
    return talkingdata_shape(world, user, events.column("ad_id").to_numpy(), events.column("publisher_id").to_numpy(),
                             (events.column("event_timestamp").cast(pa.int64()).to_numpy() - _START_US) / 1e6,
                             events.column("click").to_numpy())


def talkingdata_shape(world: AdMarketplace, user: np.ndarray, ad: np.ndarray, publisher: np.ndarray,
                      seconds: np.ndarray, click: np.ndarray) -> pa.Table:
    """Marketplace impressions as raw TalkingData rows (see :func:`click_log`)."""
    stamps = (START + (np.asarray(seconds) * 1e6).astype("timedelta64[us]")).astype("datetime64[s]").astype(str)
    return pa.table({
        "ip": user.astype(str), "app": ad.astype(str), "device": world.device[user].astype(str),
        "os": (world.user_segment[user] * 5 + world.age_group[user]).astype(str), "channel": publisher.astype(str),
        "click_time": pa.array([t.replace("T", " ") for t in stamps.tolist()]),
        "attributed_time": pa.nulls(len(user), pa.string()), "is_attributed": np.asarray(click).astype(str),
    })


def hour_at(seconds: np.ndarray) -> np.ndarray:
    """Hour of day (UTC) of seconds since START."""
    return (np.asarray(seconds) // 3600 % 24).astype(np.int64)


_START_US = int(START.astype("datetime64[us]").astype(np.int64))


def best_logloss(p_true: np.ndarray) -> float:
    """Expected log loss of the true probabilities: no model can do better on average."""
    p = np.clip(p_true, 1e-15, 1 - 1e-15)
    return float(-np.mean(p * np.log(p) + (1 - p) * np.log(1 - p)))
