"""The similar listings service: ``POST /v1/listings/similar`` {session_id, item_id} -> the next-item candidates.

The request *is* the click: it goes through the stream processor into the session's state in the
online store (``session_state``: the last 10 items), then the champion recommends from that state,
read back from the online store as the model read it offline. A click's event id is the request id,
so a resent request counts once. Clicks reach the durable event log in groups (every
``flush_s``, or :data:`FLUSH_CLICKS` clicks), off the request path: an fsync'd append per click
(~5 ms, ``benchmarks/event_log_append.py``) would be most of the latency budget. A process killed
between two flushes loses the last ``flush_s`` of session clicks from the log (as Redis with
``appendfsync everysec``); every request is also in the feature log. On start the log is replayed
into the processor, so sessions continue where they were.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from mlsd.core.errors import MlsdError
from mlsd.core.records import FeatureLogRecord
from mlsd.events import EventLog
from mlsd.events.replay import replay
from mlsd.events.schema import records_to_table, validate
from mlsd.monitoring.drift import DriftThresholds
from mlsd.monitoring.online import MonitorConfig
from mlsd.monitoring.profile import DatasetProfile
from mlsd.registry import CHAMPION, ModelRegistry
from mlsd.serving.models import Arms, ModelHolder
from mlsd.serving.protocols import RANKING_LABEL_SCHEMA
from mlsd.serving.validation import Field, RequestError, Schema, event_time
from mlsd.systems.listings.build import MODEL_NAME, PROFILE_FILE
from mlsd.systems.listings.data import CLICK_SCHEMA
from mlsd.systems.listings.features import SESSION_VIEW, listings_views, session_items
from mlsd.systems.listings.model import SIGNALS, SessionRecommender
from mlsd.systems.listings.train import K

MAX_ID = 2**31 - 1
MAX_K = 100
FLUSH_CLICKS = 512


def request_schema(now_s: float) -> Schema:
    """The route's body; a click may not be later than the event log takes (a day past ``now_s``, built at start)."""
    horizon = float(int(now_s + CLICK_SCHEMA.max_future.total_seconds() - 60))
    return {**REQUEST_SCHEMA, "timestamp": Field("number", required=False, minimum=0, maximum=horizon,
                                                 description="the click's time, Unix seconds (default: now)")}


REQUEST_SCHEMA: Schema = {
    "request_id": Field("string", required=False,
                        description="client id (the click's event id); generated when absent"),
    "timestamp": event_time(),
    "session_id": Field("integer", minimum=0, maximum=MAX_ID, description="the browsing session"),
    "item_id": Field("integer", minimum=0, maximum=MAX_ID, description="the listing clicked now"),
    "k": Field("integer", required=False, minimum=1, maximum=MAX_K, description=f"list length (default {K})"),
}


class ListingsService:
    """Serves the champion of ``listings-diginetica``; each request's click updates its session first."""

    system = "listings"
    route = "/v1/listings/similar"
    request_schema: Schema = REQUEST_SCHEMA
    label_schema: Schema = RANKING_LABEL_SCHEMA

    def __init__(self, home: Path, *, ab_share: float = 0.0, experiment: str = "listings-ab",
                 window_s: float = 86_400.0, label_delay_s: float = 600.0, thresholds: DriftThresholds | None = None,
                 poll_interval: float = 10.0, flush_s: float = 0.5) -> None:
        from mlsd.system import Workspace

        self.ws = Workspace(home)
        self.request_schema = request_schema(time.time())
        self.monitor_config = MonitorConfig(window_s=window_s, label_delay_s=label_delay_s, k=K,
                                            thresholds=thresholds or DriftThresholds(), task="ranking")
        try:
            self.log = EventLog(self.ws.events("clicks"), CLICK_SCHEMA)
        except MlsdError:
            raise MlsdError("another process owns this home's click log: serve listings with one worker") from None
        self.store = self.ws.feature_store(listings_views(self.log))
        self.processor = self.store.stream_processor([SESSION_VIEW])
        for batch in replay(self.log, batch_rows=50_000):
            self.processor.process(pa.Table.from_batches([batch]))
        self.registry = ModelRegistry(self.ws.home)
        self.models = ModelHolder(self.registry, MODEL_NAME, CHAMPION, poll_interval)
        self.arms = Arms(self.models, ab_share, experiment, poll_interval)
        self._pending: list[pa.Table] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.flushed = 0
        self._flusher = threading.Thread(target=self._flush_loop, args=(flush_s,), name="click-log", daemon=True)
        self._flusher.start()

    @property
    def model_version(self) -> str:
        return self.models.version

    def reference_profile(self) -> DatasetProfile:
        return DatasetProfile.from_dict(self.registry.artifact_json(MODEL_NAME, self.models.version, PROFILE_FILE))

    def click(self, session_id: int, item_id: int, at_s: float, event_id: str) -> None:
        """One click into the session state now, and into the event log with the next flush."""
        result = validate(records_to_table([{"event_id": event_id, "session_id": session_id, "item_id": item_id,
                                             "ts": int(at_s)}], CLICK_SCHEMA), CLICK_SCHEMA)
        if result.rejects:
            raise RequestError([{"field": r.field if r.field != "ts" else "timestamp", "message": r.reason}
                                for r in result.rejects])
        self.processor.process(result.valid)
        with self._lock:
            self._pending.append(result.valid)
            full = len(self._pending) >= FLUSH_CLICKS  # one click per table
        if full:
            self.flush()

    def flush(self) -> int:
        """Append the clicks taken since the last flush to the event log (durable on return)."""
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return 0
        appended = self.log.append(pa.concat_tables(pending))
        self.flushed += appended.appended
        return appended.appended

    def _flush_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.flush()

    def score(self, body: dict[str, Any], request_id: str) -> tuple[dict[str, Any], FeatureLogRecord]:
        session_id, item_id = int(body["session_id"]), int(body["item_id"])
        at_s = float(body["timestamp"]) if body.get("timestamp") is not None else time.time()
        self.click(session_id, item_id, at_s, request_id)
        columns = self.store.online_features([SESSION_VIEW], {"session_id": [session_id]})
        session = session_items(columns)
        arm, model, version = self.arms.pick(session_id)
        assert isinstance(model, SessionRecommender)
        known = model.dense_items(session)
        listed = model.recommend(known, int(body.get("k") or K))
        raw = model.item_ids[listed.items].tolist()
        record = FeatureLogRecord(
            request_id=request_id, at_us=round(at_s * 1e6), model_version=version, arm=arm,
            entities={"session_id": [session_id] * len(raw)}, items=[str(i) for i in raw],
            features={s: listed.signals[s].tolist() for s in SIGNALS}, predictions=listed.scores.tolist(),
            extra={"session_length": len(session), "known_items": len(known), "item_id": item_id})
        ranked = [{"item_id": i, "score": float(s)} for i, s in zip(raw, listed.scores.tolist(), strict=True)]
        return {"request_id": request_id, "model_version": version, "arm": arm, "session": session,
                "ranked": ranked}, record

    def health(self) -> dict[str, Any]:
        return {"model_swaps": self.models.swaps, "ab_share": self.arms.share, "clicks_logged": self.flushed,
                "sessions": self.processor.aggregators[0].n_keys}

    def close(self) -> None:
        self._stop.set()
        self._flusher.join(timeout=5)
        self.flush()
        self.arms.close()
        self.store.online.close()
        self.log.close()
