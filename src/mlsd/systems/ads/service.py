"""The ad scoring service: one request context and candidate ads -> calibrated click probabilities, ranked.

Online features for every candidate come from one batch read per view; request-time features come
from the same on-demand function used for training frames; the model is the registry's champion,
hot-swapped when the alias moves. Each response is logged with the exact feature vector it used.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from mlsd.core.records import FeatureLogRecord
from mlsd.datasets import TALKINGDATA_SCHEMA
from mlsd.events import EventLog
from mlsd.features import FeatureStore, OfflineStore, open_online_store
from mlsd.monitoring.drift import DriftThresholds
from mlsd.monitoring.online import MonitorConfig
from mlsd.monitoring.profile import DatasetProfile
from mlsd.registry import CHAMPION, ModelRegistry
from mlsd.serving.models import Arms, ModelHolder
from mlsd.serving.validation import Field, Schema, event_time
from mlsd.systems.ads.features import CATEGORICAL, REQUEST_TIME, ads_views, model_inputs
from mlsd.systems.ads.run import PROFILE_FILE, model_name, served_dataset
from mlsd.systems.ads.system import MONITOR_WINDOW_S
from mlsd.training.pipeline import ClickPipeline

MAX_CANDIDATES = 500


def _id() -> Field:
    return Field("integer", minimum=0, maximum=2**31 - 1)


REQUEST_SCHEMA = {
    "request_id": Field("string", required=False, description="client id; generated when absent"),
    "timestamp": event_time(),
    "context": Field("object", properties={
        "ip": _id(), "device": _id(), "os": _id()}),
    "candidates": Field("array", min_items=1, max_items=MAX_CANDIDATES, items={
        "app": _id(), "channel": _id()}),
}
CONTEXT_KEYS = ("ip", "device", "os")
# Left out of drift checks: the hour follows the clock, and an unbounded count grows with it.
NOT_MONITORED = ("click_context__local_hour", "ip_clicks__count_all")
CANDIDATE_KEYS = ("app", "channel")


class AdsService:
    """Scores ad candidates with the champion of ``ads-talkingdata`` from a run's home directory."""

    system = "ads"
    route = "/v1/ads/score"
    request_schema: Schema = REQUEST_SCHEMA

    def __init__(self, home: Path, *, dataset: str | None = None, alias: str = CHAMPION,
                 poll_interval: float = 10.0, ab_share: float = 0.0, experiment: str = "ads-ab",
                 window_s: float = MONITOR_WINDOW_S, label_delay_s: float = 600.0,
                 thresholds: DriftThresholds | None = None) -> None:
        self.home = Path(home)
        dataset = dataset or served_dataset(self.home)
        self.dataset = dataset
        self.monitor_config = MonitorConfig(window_s=window_s, label_delay_s=label_delay_s,
                                            thresholds=thresholds or DriftThresholds(), exclude=NOT_MONITORED)
        self.log = EventLog(self.home / "events" / "clicks", TALKINGDATA_SCHEMA, writer=False)
        self.views = ads_views(self.log)
        self.view_names = [v.name for v in self.views]
        self.store = FeatureStore(open_online_store(self.home / "online.db"), OfflineStore(), self.views)
        self.registry = ModelRegistry(self.home)
        self.models = ModelHolder(self.registry, model_name(dataset), alias, poll_interval, warm_up=self._warm_up)
        # A/B test: a hashed share of ips is scored by the challenger, which is followed like the champion.
        self.arms = Arms(self.models, ab_share, experiment, poll_interval, warm_up=self._warm_up)

    def reference_profile(self) -> DatasetProfile:
        """The monitoring reference registered with the champion version."""
        return DatasetProfile.from_dict(self.registry.artifact_json(model_name(self.dataset), self.models.version,
                                                                    PROFILE_FILE))

    @property
    def model_version(self) -> str:
        return self.models.version

    def _warm_up(self, pipeline: ClickPipeline) -> None:
        body = {"context": {"ip": 1, "device": 1, "os": 1}, "candidates": [{"app": 1, "channel": 1}]}
        pipeline.predict(self.features(body)[1])

    def features(self, body: dict[str, Any]) -> tuple[dict[str, list[Any]], dict[str, np.ndarray], float]:
        """Entities, model input columns and request time of a validated request."""
        candidates = body["candidates"]
        n = len(candidates)
        context = body["context"]
        stamp = float(body["timestamp"]) if body.get("timestamp") is not None else time.time()
        entities: dict[str, list[Any]] = {k: [context[k]] * n for k in CONTEXT_KEYS}
        for key in CANDIDATE_KEYS:
            entities[key] = [c[key] for c in candidates]
        features = self.store.online_features(self.view_names, entities, request={REQUEST_TIME: [stamp] * n},
                                              at_us=round(stamp * 1e6))
        columns = model_inputs(features, {k: np.asarray(entities[k], dtype=np.int64) for k in CATEGORICAL})
        return entities, columns, stamp

    def score(self, body: dict[str, Any], request_id: str) -> tuple[dict[str, Any], FeatureLogRecord]:
        entities, columns, stamp = self.features(body)
        arm, pipeline, version = self.arms.pick(body["context"]["ip"])
        p = pipeline.predict(columns)
        order = np.argsort(-p, kind="stable")
        candidates = body["candidates"]
        ranked = [{"app": candidates[i]["app"], "channel": candidates[i]["channel"], "probability": float(p[i])}
                  for i in order.tolist()]
        record = FeatureLogRecord(request_id=request_id, at_us=round(stamp * 1e6), model_version=version, arm=arm,
                                  entities=entities, request={REQUEST_TIME: stamp},
                                  features=_json_columns(columns, pipeline.encoder.numeric), predictions=p.tolist())
        return {"request_id": request_id, "model_version": version, "arm": arm, "ranked": ranked}, record

    def health(self) -> dict[str, Any]:
        return {"model_swaps": self.models.swaps, "views": self.view_names, "dataset": self.dataset,
                "ab_share": self.arms.share}

    def close(self) -> None:
        self.arms.close()
        self.store.online.close()
        self.log.close()


def _json_columns(columns: dict[str, np.ndarray], names: tuple[str, ...]) -> dict[str, list[float | None]]:
    """The named columns as lists, NaN (missing) as JSON null, converted in one pass."""
    matrix = np.vstack([np.asarray(columns[name], dtype=np.float64) for name in names])
    missing = np.isnan(matrix)
    if missing.any():
        matrix = matrix.astype(object)
        matrix[missing] = None
    rows: list[list[float | None]] = matrix.tolist()
    return dict(zip(names, rows, strict=True))
