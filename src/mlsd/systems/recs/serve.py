"""The recommendation service: ``POST /v1/recs/recommend`` {user_id, k, timestamp, context} -> ranked items.

A known user is read from the online store (attributes, last items) and the seen-items snapshot, plus
any online last items the snapshot lacks (ratings streamed in since it was taken); an unknown user
takes the cold-start path (attributes from ``context`` if given, history only from the online store:
two-tower from attributes plus popularity). The champion recommender is followed through the registry
alias; with an A/B share, users hashed to the treatment arm get the challenger. Each response is
logged with the listed items in shown order (the monitor's ranking), and the monitor compares the
listed items' features with the serving version's reference profile.
Item features (popularity windows, profile) are read for the whole catalogue at once through an
:class:`OnlineFeatureCache` and re-read every ``item_features_max_age_s`` (default 1 s), so a request
pays for a memory gather rather than 500 online-store reads. Each response is logged with its features,
model version and stages; per-stage timings go to ``/metrics`` as histograms.

``POST /v1/recs/ratings`` takes new ratings through a :class:`PushIntake`: durable in the event log before
the reply, then in the online features (last items, popularity) and the rater's seen items. One process
owns the log; with several workers the others answer 409.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from mlsd.core.errors import MlsdError
from mlsd.core.records import FeatureLogRecord
from mlsd.core.timeutil import now_us
from mlsd.events import EventLog
from mlsd.features import (
    FeatureStore,
    OfflineStore,
    OnlineFeatureCache,
    PushIntake,
    PushRejectedError,
    open_online_store,
)
from mlsd.features.offline import output_column
from mlsd.monitoring.drift import DriftThresholds
from mlsd.monitoring.online import MonitorConfig
from mlsd.monitoring.profile import DatasetProfile
from mlsd.registry import CHAMPION, ModelRegistry
from mlsd.serving.protocols import RANKING_LABEL_SCHEMA
from mlsd.serving.validation import Field, RequestError, Schema, event_time
from mlsd.systems.recs.build import PROFILE_FILE, SERVING
from mlsd.systems.recs.features import ITEM_VIEWS, LAST_N, RATINGS_SCHEMA, USER_VIEWS, recs_views
from mlsd.systems.recs.pipeline import FeatureLookup, Recommender, Users
from mlsd.systems.recs.run import MODEL_NAME, user_codes

MAX_K = 100
MAX_ID = 2**31 - 1  # user and item ids: the same range on every route (a rated user can be recommended to)
REQUEST_SCHEMA: Schema = {
    "request_id": Field("string", required=False, description="client id; generated when absent"),
    "timestamp": event_time(),
    "user_id": Field("integer", minimum=0, maximum=MAX_ID, description="unknown users get cold-start lists"),
    "k": Field("integer", required=False, minimum=1, maximum=MAX_K, description="list length (default 10)"),
    "context": Field("object", required=False, properties={
        "age": Field("integer", required=False, minimum=0, maximum=120),
        "gender": Field("string", required=False, extra={"enum": ["M", "F"]}),
        "occupation": Field("integer", required=False, minimum=0, maximum=1000),
    }),
}
MAX_RATINGS = 10_000


def ratings_schema(now_s: float) -> Schema:
    """The ratings route's body; a rating may not be later than the event log takes (a day past ``now_s``).

    Built when the service starts, so the OpenAPI document states the bound the server enforces
    (the log's horizon only moves later, so what this bound admits the log always takes).
    """
    horizon = now_s + RATINGS_SCHEMA.max_future.total_seconds() - 60
    return {"ratings": Field("array", min_items=1, max_items=MAX_RATINGS, items={
        "event_id": Field("string", required=False, description="the client's id; resends with it count once"),
        "user_id": Field("integer", minimum=0, maximum=MAX_ID),
        "item_id": Field("integer", minimum=0, maximum=MAX_ID),
        "rating": Field("number", minimum=0, maximum=5),
        "timestamp": Field("number", minimum=0, maximum=float(int(horizon)),
                           description="when the user rated (watched), Unix seconds; at most a day ahead"),
    })}


STAGES = ("two_tower_ms", "co_visitation_ms", "merge_ms", "features_ms", "ranking_ms", "rerank_ms")


class RecsService:
    """Serves the champion of ``recs-movielens`` from a ``mlsd run recs`` home directory."""

    system = "recs"
    route = "/v1/recs/recommend"
    request_schema: Schema = REQUEST_SCHEMA
    intake_route = "/v1/recs/ratings"
    label_schema: Schema = RANKING_LABEL_SCHEMA

    def __init__(self, home: Path, *, alias: str = CHAMPION, item_features_max_age_s: float = 1.0,
                 ab_share: float = 0.0, experiment: str = "recs-ab", window_s: float = 3600.0,
                 label_delay_s: float = 600.0, thresholds: DriftThresholds | None = None,
                 poll_interval: float = 10.0) -> None:
        from mlsd.serving.models import Arms, ModelHolder

        self.home = Path(home)
        self.intake_schema = ratings_schema(time.time())
        self.item_features_max_age_s = item_features_max_age_s
        self.monitor_config = MonitorConfig(window_s=window_s, label_delay_s=label_delay_s,
                                            thresholds=thresholds or DriftThresholds(), task="ranking")
        # one item-feature cache per served model (champion and challenger), each with its own catalogue
        self._item_caches: dict[int, tuple[Recommender, OnlineFeatureCache]] = {}
        serving = self.home / SERVING
        try:
            self.log, owner = EventLog(serving / "events", RATINGS_SCHEMA), True
        except MlsdError:  # another process (another worker) owns the rating log and takes the ratings
            self.log, owner = EventLog(serving / "events", RATINGS_SCHEMA, writer=False), False
        self.store = FeatureStore(open_online_store(serving / "online.db"), OfflineStore(),
                                  recs_views(self.log, serving / "profiles"))
        self.ratings = PushIntake(self.store, self.log, ["user_history", "item_popularity"]) if owner else None
        self.streamed: dict[int, list[int]] = {}  # item ids each user rated through the intake
        seen = np.load(serving / "seen.npz")
        offsets = np.concatenate([[0], np.cumsum(seen["lengths"])])
        self.seen = {int(u): seen["items"][offsets[i]:offsets[i + 1]] for i, u in enumerate(seen["user_ids"])}
        self.registry = ModelRegistry(self.home)
        self.models = ModelHolder(self.registry, MODEL_NAME, alias, poll_interval, warm_up=self._warm_up)
        self.arms = Arms(self.models, ab_share, experiment, poll_interval, warm_up=self._warm_up)
        self.metrics = CollectorRegistry()  # served on /metrics beside the app's own
        self.stage_seconds = Histogram("mlsd_recs_stage_seconds", "Time per recommendation stage", ["stage"],
                                       registry=self.metrics, buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02))
        self._stage_histograms = {stage: self.stage_seconds.labels(stage.removesuffix("_ms")) for stage in STAGES}

    @property
    def model_version(self) -> str:
        return self.models.version

    def reference_profile(self) -> DatasetProfile:
        return DatasetProfile.from_dict(self.registry.artifact_json(MODEL_NAME, self.models.version, PROFILE_FILE))

    def _warm_up(self, model: Recommender) -> None:
        self._recommend(model, {"user_id": next(iter(self.seen), 1), "k": 10})

    def _user(self, model: Recommender, body: dict[str, Any],
              columns: dict[str, np.ndarray]) -> tuple[Users, bool]:
        """The request's user from its online feature ``columns``.

        A user with no rating in the snapshot is a cold-start user (no id embedding: it was never
        trained), as in offline evaluation; attributes come from the user table when it knows the
        user (signed up, not rated yet), else from what the client sends in ``context``.
        """
        user_id = int(body["user_id"])
        context = body.get("context") or {}
        known = user_id in self.seen
        given = {"age": float(context.get("age", np.nan)), "occupation": float(context.get("occupation", np.nan)),
                 "gender": {"F": 1.0, "M": 0.0}.get(context.get("gender", ""), np.nan)}
        stored = {f: np.asarray(columns[output_column("user_profile", f)], np.float64) for f in given}
        age, gender, occupation = (np.where(np.isnan(stored[f]), given[f], stored[f])
                                   for f in ("age", "gender", "occupation"))
        codes = user_codes(age, gender, occupation)
        seen = self._seen(model, user_id, columns)
        return Users(np.array([model.dense_user(user_id) if known else -1]), np.array([user_id]), codes, [seen]), known

    def _seen(self, model: Recommender, user_id: int, columns: dict[str, np.ndarray]) -> np.ndarray:
        """The user's seen items, oldest first (dense ids): the snapshot, the ratings taken since, then any
        of the online store's last items still missing (streamed by another process)."""
        seen: np.ndarray = self.seen.get(user_id, np.zeros(0, np.int64))
        online = [columns[output_column("user_history", f"last_item_{n}")][0] for n in range(LAST_N, 0, -1)]
        extra = model.dense_items(np.array([*self.streamed.get(user_id, ()), *online], np.float64))
        extra = extra[(extra >= 0) & ~np.isin(extra, seen)]
        if not len(extra):
            return seen
        _, first = np.unique(extra, return_index=True)  # each item once, at its first place
        return np.concatenate([seen, extra[np.sort(first)]])

    def _item_features(self, model: Recommender) -> OnlineFeatureCache:
        """The catalogue's item-feature cache, rebuilt when a new model (with its own catalogue) is served."""
        cached = self._item_caches.get(id(model))
        if cached is None or cached[0] is not model:
            cache = OnlineFeatureCache(self.store, list(ITEM_VIEWS), "item_id", model.item_ids.tolist(),
                                       max_age_s=self.item_features_max_age_s)
            if len(self._item_caches) >= 2:  # a swapped-out model's cache goes (champion + challenger stay)
                self._item_caches.pop(next(iter(self._item_caches)))
            self._item_caches[id(model)] = cached = (model, cache)
        return cached[1]

    def _lookup(self, model: Recommender, at_us: int, user_columns: dict[str, np.ndarray]) -> FeatureLookup:
        """Feature lookup for one request: the user's columns were read once already; items come from the cache."""
        cache = self._item_features(model)

        def read(user_ids: np.ndarray, item_ids: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
            return user_columns, cache.take(model.dense_items(item_ids), at_us)
        return read

    def _recommend(self, model: Recommender, body: dict[str, Any]) -> dict[str, Any]:
        at_us = round(float(body["timestamp"]) * 1e6) if body.get("timestamp") is not None else now_us()
        user_columns = self.store.online_features(list(USER_VIEWS), {"user_id": [int(body["user_id"])]}, at_us=at_us)
        users, known = self._user(model, body, user_columns)
        ranked = model.rank(users, self._lookup(model, at_us, user_columns), k=int(body.get("k") or 10))
        return {"ranked": ranked, "known": known, "at_us": at_us}

    def score(self, body: dict[str, Any], request_id: str) -> tuple[dict[str, Any], FeatureLogRecord]:
        arm, model, version = self.arms.pick(body["user_id"])
        out = self._recommend(model, body)
        ranked = out["ranked"]
        for stage, histogram in self._stage_histograms.items():
            histogram.observe(ranked.timings[stage] / 1e3)
        items = ranked.items[0]
        count = int((items >= 0).sum())
        listed = [{"item_id": int(model.item_ids[i]), "score": float(s), "stage": stage}
                  for i, s, stage in zip(items[:count].tolist(), ranked.scores[0][:count].tolist(), ranked.stages[0],
                                         strict=True)]
        path = "known_user" if out["known"] else "cold_start"
        items = [x["item_id"] for x in listed]
        record = FeatureLogRecord(
            request_id=request_id, at_us=out["at_us"], model_version=version, arm=arm,
            entities={"user_id": [int(body["user_id"])] * len(items), "item_id": items}, items=items,
            features=ranked.features[0], predictions=[x["score"] for x in listed],
            extra={"path": path, "candidates": int((ranked.candidates.items[0] >= 0).sum()),
                   "stages": [x["stage"] for x in listed],
                   "timings_ms": {k: round(v, 3) for k, v in ranked.timings.items()}})
        answer = {"request_id": request_id, "model_version": version, "arm": arm, "path": path, "ranked": listed}
        return answer, record

    def intake(self, body: dict[str, Any]) -> dict[str, Any]:
        """Ratings: durable in the event log, then in the online features and the raters' seen items."""
        if self.ratings is None:
            raise MlsdError("another process of this service owns the rating log: send ratings to it, or serve "
                            "with one worker")
        records = [{"user_id": r["user_id"], "item_id": r["item_id"], "rating": float(r["rating"]),
                    "ts": r["timestamp"], **({"event_id": r["event_id"]} if "event_id" in r else {})}
                   for r in body["ratings"]]
        try:
            result = self.ratings.push(records)
        except PushRejectedError as exc:
            raise RequestError([{**e, "field": f"ratings{e['field']}"} for e in exc.errors]) from None
        users, items = (result.events.column(c).to_pylist() for c in ("user_id", "item_id"))
        for user, item in zip(users, items, strict=True):
            self.streamed.setdefault(user, []).append(item)
        return {"accepted": result.accepted, "duplicates": result.duplicates}

    def health(self) -> dict[str, Any]:
        return {"users": len(self.seen), "model_swaps": self.models.swaps, "takes_ratings": self.ratings is not None,
                "users_with_new_ratings": len(self.streamed), "ab_share": self.arms.share}

    def close(self) -> None:
        self.arms.close()
        self.store.online.close()
        self.log.close()

