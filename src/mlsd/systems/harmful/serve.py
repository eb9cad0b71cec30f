"""The harmful-content service: ``POST /v1/harmful/classify`` {items: [{id, text}]} -> probabilities and actions.

Each text is embedded in the request path by the model's own encoder (the packaged or fine-tuned
MiniLM: the same ``encode`` that built the training features), scored, calibrated and decided:
*remove* (hate), *demote* (offensive) or *allow*. ``ranked`` is the review queue: the items by P(hate),
highest first. The feature log keeps per item the three probabilities, the text's length and the
predicted class (the monitor's drift and class-prevalence columns); P(hate) is the prediction whose
online precision and recall at the served threshold follow the moderators' decisions (labels).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlsd.core.records import FeatureLogRecord
from mlsd.monitoring.drift import DriftThresholds
from mlsd.monitoring.online import MonitorConfig
from mlsd.monitoring.profile import DatasetProfile
from mlsd.registry import CHAMPION, ModelRegistry
from mlsd.serving.models import Arms, ModelHolder
from mlsd.serving.protocols import LABEL_SCHEMA
from mlsd.serving.validation import Field, Schema, event_time
from mlsd.systems.harmful.build import MODEL_NAME, PROFILE_FILE, monitored_columns
from mlsd.systems.harmful.data import CLASSES, HATE
from mlsd.systems.harmful.model import ACTIONS, HarmfulClassifier

MAX_ITEMS = 64
MAX_TEXT = 2000  # characters (a tweet has 280; longer posts are refused, not truncated silently)

REQUEST_SCHEMA: Schema = {
    "request_id": Field("string", required=False, description="client id; generated when absent"),
    "timestamp": event_time(),
    "items": Field("array", min_items=1, max_items=MAX_ITEMS, items={
        "id": Field("string", min_items=1, max_items=128, description="the post's id"),
        "text": Field("string", min_items=1, max_items=MAX_TEXT, description="the post's text"),
    }),
}


def _warm(model: Any) -> None:
    model.classify(["warming up the encoder"])


class HarmfulService:
    """Serves the champion of ``harmful-davidson`` (the challenger for a hashed share of posts)."""

    system = "harmful"
    route = "/v1/harmful/classify"
    request_schema: Schema = REQUEST_SCHEMA
    label_schema: Schema = LABEL_SCHEMA

    def __init__(self, home: Path, *, ab_share: float = 0.0, experiment: str = "harmful-ab",
                 window_s: float = 3600.0, label_delay_s: float = 600.0, thresholds: DriftThresholds | None = None,
                 poll_interval: float = 10.0) -> None:
        self.registry = ModelRegistry(home)
        self.models = ModelHolder(self.registry, MODEL_NAME, CHAMPION, poll_interval, warm_up=_warm)
        self.arms = Arms(self.models, ab_share, experiment, poll_interval, warm_up=_warm)
        champion: HarmfulClassifier = self.models.current[0]
        self.monitor_config = MonitorConfig(window_s=window_s, label_delay_s=label_delay_s,
                                            thresholds=thresholds or DriftThresholds(),
                                            decision_threshold=champion.decision.t_hate)

    @property
    def model_version(self) -> str:
        return self.models.version

    def reference_profile(self) -> DatasetProfile:
        return DatasetProfile.from_dict(self.registry.artifact_json(MODEL_NAME, self.models.version, PROFILE_FILE))

    def score(self, body: dict[str, Any], request_id: str) -> tuple[dict[str, Any], FeatureLogRecord]:
        items = body["items"]
        ids, texts = [str(i["id"]) for i in items], [str(i["text"]) for i in items]
        at_s = float(body["timestamp"]) if body.get("timestamp") is not None else time.time()
        arm, model, version = self.arms.pick(ids[0])
        assert isinstance(model, HarmfulClassifier)
        proba, classes = model.classify(texts)
        columns = monitored_columns(texts, proba, classes)
        record = FeatureLogRecord(
            request_id=request_id, at_us=round(at_s * 1e6), model_version=version, arm=arm,
            entities={"post_id": ids, "predicted_class": columns["predicted_class"]}, items=list(ids),
            features={k: columns[k].tolist() for k in ("p_hate", "p_offensive", "p_neither", "text_length")},
            predictions=proba[:, HATE].tolist(), extra={"family": model.family})
        answers = [{"id": i, "probabilities": {c: round(float(p), 6) for c, p in zip(CLASSES, row, strict=True)},
                    "class": CLASSES[k], "action": ACTIONS[k]} for i, row, k in zip(ids, proba, classes, strict=True)]
        queue = sorted(range(len(ids)), key=lambda j: -proba[j, HATE])
        return {"request_id": request_id, "model_version": version, "arm": arm, "items": answers,
                "ranked": [{"id": ids[j], "score": round(float(proba[j, HATE]), 6)} for j in queue]}, record

    def health(self) -> dict[str, Any]:
        model: HarmfulClassifier = self.models.current[0]
        return {"model_swaps": self.models.swaps, "ab_share": self.arms.share, "family": model.family,
                "encoder": model.encoder_version, **model.decision.to_dict()}

    def close(self) -> None:
        self.arms.close()
