"""The visual search service: ``POST /v1/visual/search`` {image: base64 JPEG/PNG, k} -> similar products.

The same route takes a ``multipart/form-data`` upload (an ``image`` file part, ``k`` a text part):
``curl -F image=@shoe.jpg -F k=5 URL``.

The image is decoded and embedded in the request path by the same MobileNet encoder (the model file
the build copied into the home, its digest checked against the model's lineage), projected, and
searched in the champion's own gallery index. A body that is not base64, not an image, too large or
too small gets a 422 naming ``image`` and the problem.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from pathlib import Path
from typing import Any

from mlsd.core.errors import MlsdError
from mlsd.core.records import FeatureLogRecord
from mlsd.embeddings.image import MAX_IMAGE_BYTES, MODEL_FILE, ImageError, MobileNetEncoder
from mlsd.monitoring.drift import DriftThresholds
from mlsd.monitoring.online import MonitorConfig
from mlsd.monitoring.profile import DatasetProfile
from mlsd.registry import CHAMPION, ModelRegistry
from mlsd.serving.models import Arms, ModelHolder
from mlsd.serving.protocols import RANKING_LABEL_SCHEMA
from mlsd.serving.validation import Field, RequestError, Schema, event_time
from mlsd.systems.visual.build import ENCODER_DIR, ENCODER_FILE, MODEL_NAME, PROFILE_FILE, K
from mlsd.systems.visual.model import VisualSearchModel

MAX_K = 100
REQUEST_SCHEMA: Schema = {
    "request_id": Field("string", required=False, description="client id; generated when absent"),
    "timestamp": event_time(),
    "image": Field("string", min_items=1, max_items=(MAX_IMAGE_BYTES * 4) // 3 + 4,
                   description="the query image (JPEG or PNG), base64"),
    "k": Field("integer", required=False, minimum=1, maximum=MAX_K, description=f"results (default {K})"),
}


class VisualService:
    """Serves the champion of ``visual-fashion`` (the challenger for a hashed share of requests)."""

    system = "visual"
    route = "/v1/visual/search"
    request_schema: Schema = REQUEST_SCHEMA
    label_schema: Schema = RANKING_LABEL_SCHEMA
    upload_fields = ("image",)

    def __init__(self, home: Path, *, ab_share: float = 0.0, experiment: str = "visual-ab", window_s: float = 3600.0,
                 label_delay_s: float = 600.0, thresholds: DriftThresholds | None = None,
                 poll_interval: float = 10.0) -> None:
        path = home / ENCODER_DIR / MODEL_FILE
        if not path.exists():
            raise MlsdError(f"{path} not found: run `mlsd run visual --home {home}` first")
        self.encoder = MobileNetEncoder(model_path=path, threads=1, pooling=_pooling(home / ENCODER_DIR / ENCODER_FILE))
        self.registry = ModelRegistry(home)
        self.models = ModelHolder(self.registry, MODEL_NAME, CHAMPION, poll_interval, warm_up=self._check)
        self.arms = Arms(self.models, ab_share, experiment, poll_interval, warm_up=self._check)
        self.monitor_config = MonitorConfig(window_s=window_s, label_delay_s=label_delay_s, k=K,
                                            thresholds=thresholds or DriftThresholds(), task="ranking")

    def _check(self, model: VisualSearchModel) -> None:
        if model.encoder_version != self.encoder.version:
            raise MlsdError(f"model {model.family} was built on encoder {model.encoder_version}; this home has "
                            f"{self.encoder.version}: run `mlsd run visual` again")

    @property
    def model_version(self) -> str:
        return self.models.version

    def reference_profile(self) -> DatasetProfile:
        return DatasetProfile.from_dict(self.registry.artifact_json(MODEL_NAME, self.models.version, PROFILE_FILE))

    def score(self, body: dict[str, Any], request_id: str) -> tuple[dict[str, Any], FeatureLogRecord]:
        try:
            image = base64.b64decode(body["image"], validate=True)
            raw = self.encoder.encode([image], batch_size=1)
        except (binascii.Error, ValueError) as exc:
            problem = str(exc) if isinstance(exc, ImageError) else "not base64"
            raise RequestError([{"field": "image", "message": problem}]) from None
        at_s = float(body["timestamp"]) if body.get("timestamp") is not None else time.time()
        arm, model, version = self.arms.pick(request_id)
        assert isinstance(model, VisualSearchModel)
        scores, rows = model.search(raw, int(body.get("k") or K))
        found = [(float(s), int(r)) for s, r in zip(scores[0], rows[0], strict=True) if r >= 0]
        ranked = [{"product_id": int(model.product_ids[r]), "score": round(s, 6), "article_type": model.article_type[r],
                   "colour": model.colour[r], "name": model.names[r]} for s, r in found]
        similarity: list[float | None] = [s for s, _ in found]
        record = FeatureLogRecord(
            request_id=request_id, at_us=round(at_s * 1e6), model_version=version, arm=arm,
            items=[str(p["product_id"]) for p in ranked], predictions=similarity,
            features={"similarity": similarity, "top_similarity": [similarity[0] if similarity else None] * len(found)},
            extra={"family": model.family, "image_bytes": len(image)})
        return {"request_id": request_id, "model_version": version, "arm": arm, "ranked": ranked}, record

    def health(self) -> dict[str, Any]:
        model: VisualSearchModel = self.models.current[0]
        return {"model_swaps": self.models.swaps, "ab_share": self.arms.share, "family": model.family,
                "gallery": model.index.size, "encoder": self.encoder.version}

    def close(self) -> None:
        self.arms.close()


def _pooling(path: Path) -> str:
    """The pooling the home's vectors were built with (``avg`` for a home built before there was a choice)."""
    if not path.exists():
        return "avg"
    try:
        return str(json.loads(path.read_text())["pooling"])
    except (ValueError, KeyError, TypeError):
        raise MlsdError(f"{path} is not an encoder description: run `mlsd run visual` again") from None
