"""The PYMK service: a user's suggested friends from the batch-precomputed lists, or the online path.

``GET /v1/pymk/{user_id}?k=`` (and ``POST /v1/pymk/recommend`` {user_id, k}) answer from the
``pymk_lists`` view in the online store when the user's list is fresh. ``POST /v1/pymk/edges`` takes
new friendships through a :class:`PushIntake` (validated, durable in the event log before the reply,
deduplicated by event id, streamed into ``user_friends``); the friendship joins the in-memory graph
and marks stale every user whose friends-of-friends it changes (both sides and their friends). A
stale user, one the precompute did not list, or a champion other than the one that made the lists
takes the online path: the user's candidates and features from their row of the graph
(:func:`~mlsd.systems.pymk.graph.user_candidates`, equal to the batch values), ranked by the
champion's one ranking rule. So the next answer reflects a friendship as soon as it is acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from mlsd.core.errors import MlsdError
from mlsd.core.records import FeatureLogRecord
from mlsd.events import EventLog
from mlsd.features import PushIntake, PushRejectedError
from mlsd.features.offline import output_column
from mlsd.monitoring.drift import DriftThresholds
from mlsd.monitoring.online import MonitorConfig
from mlsd.monitoring.profile import DatasetProfile
from mlsd.registry import CHAMPION, ModelRegistry
from mlsd.serving.app import RANKING_LABEL_SCHEMA
from mlsd.serving.models import Arms, ModelHolder
from mlsd.serving.validation import Field, RequestError, Schema, event_time
from mlsd.systems.pymk.build import MODEL_NAME, PROFILE_FILE
from mlsd.systems.pymk.data import EDGE_SCHEMA
from mlsd.systems.pymk.features import FRIENDS_VIEW, LIST_K, LISTS_VIEW, pymk_views
from mlsd.systems.pymk.graph import adjacency, user_candidates
from mlsd.systems.pymk.model import FriendModel

FRIEND_COLUMNS = tuple(output_column(LISTS_VIEW, f"friend_{n}") for n in range(1, LIST_K + 1))
SCORE_COLUMNS = tuple(output_column(LISTS_VIEW, f"score_{n}") for n in range(1, LIST_K + 1))
MAX_USERS = 1_000_000  # user ids 0..MAX_USERS-1: the in-memory graph is sized by the largest id
MAX_EDGES = 10_000
REQUEST_SCHEMA: Schema = {
    "request_id": Field("string", required=False, description="client id; generated when absent"),
    "timestamp": event_time(),
    "user_id": Field("integer", minimum=0, maximum=MAX_USERS - 1, description="the user to suggest friends to"),
    "k": Field("integer", required=False, minimum=1, maximum=LIST_K, description="list length (default 10)"),
}
EDGES_SCHEMA: Schema = {"edges": Field("array", min_items=1, max_items=MAX_EDGES, items={
    "event_id": Field("string", required=False, description="the client's id; resends with it count once"),
    "user_id": Field("integer", minimum=0, maximum=MAX_USERS - 1),
    "friend_id": Field("integer", minimum=0, maximum=MAX_USERS - 1, description="not the user themself"),
    "timestamp": event_time("when they became friends, Unix seconds (default: now)"),
})}


def edges_schema(now_s: float) -> Schema:
    """The edges route's body; a friendship may not be later than the event log takes (a day past ``now_s``)."""
    horizon = float(int(now_s + EDGE_SCHEMA.max_future.total_seconds() - 60))
    items = {**(EDGES_SCHEMA["edges"].items or {}), "timestamp": Field(
        "number", required=False, minimum=0, maximum=horizon,
        description="when they became friends, Unix seconds (default: now)")}
    return {"edges": Field("array", min_items=1, max_items=MAX_EDGES, items=items)}


class PymkService:
    """Serves the champion of ``pymk-facebook`` from a ``mlsd run pymk`` home directory."""

    system = "pymk"
    route = "/v1/pymk/recommend"
    lookup_route = "/v1/pymk/{user_id:int}"
    intake_route = "/v1/pymk/edges"
    request_schema: Schema = REQUEST_SCHEMA
    intake_schema: Schema = EDGES_SCHEMA
    label_schema: Schema = RANKING_LABEL_SCHEMA

    def __init__(self, home: Path, *, ab_share: float = 0.0, experiment: str = "pymk-ab", window_s: float = 3600.0,
                 label_delay_s: float = 600.0, thresholds: DriftThresholds | None = None,
                 poll_interval: float = 10.0) -> None:
        from mlsd.system import Workspace

        self.ws = Workspace(home)
        self.intake_schema = edges_schema(time.time())
        state = self.ws.run_state() or {}
        self.lists_version = str(state.get("served", {}).get("lists_version", ""))
        self.monitor_config = MonitorConfig(window_s=window_s, label_delay_s=label_delay_s, k=10,
                                            thresholds=thresholds or DriftThresholds(), task="ranking")
        try:
            self.log = EventLog(self.ws.events("friendships"), EDGE_SCHEMA)
        except MlsdError:
            raise MlsdError("another process owns this home's friendship log: serve pymk with one worker") from None
        self.store = self.ws.feature_store(pymk_views(self.log, self.ws.home / "lists"))
        self.intake_push = PushIntake(self.store, self.log, [FRIENDS_VIEW])
        pairs = self.log.read(["user_id", "friend_id"])
        edges = np.column_stack([pairs["user_id"].to_numpy(), pairs["friend_id"].to_numpy()])
        self.graph = adjacency(edges, int(edges.max()) + 1 if len(edges) else 1)
        self.degree = np.asarray(self.graph.sum(axis=1)).ravel()
        self.stale: set[int] = set()
        self.registry = ModelRegistry(self.ws.home)
        self.models = ModelHolder(self.registry, MODEL_NAME, CHAMPION, poll_interval)
        self.arms = Arms(self.models, ab_share, experiment, poll_interval)
        self.paths = {"precomputed": 0, "online": 0}
        self._padded: dict[int, tuple[FriendModel, np.ndarray]] = {}

    @property
    def model_version(self) -> str:
        return self.models.version

    def reference_profile(self) -> DatasetProfile:
        return DatasetProfile.from_dict(self.registry.artifact_json(MODEL_NAME, self.models.version, PROFILE_FILE))

    def lookup_body(self, path: Mapping[str, Any], query: Mapping[str, str]) -> dict[str, Any]:
        body: dict[str, Any] = {"user_id": path["user_id"]}
        if "k" in query:
            try:
                body["k"] = int(query["k"])
            except ValueError:
                raise RequestError([{"field": "k", "message": f"must be an integer, got {query['k']!r}"}]) from None
        return body

    def _precomputed(self, user: int, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        columns = self.store.online_features([LISTS_VIEW], {"user_id": [user]})
        friends = np.array([columns[c][0] for c in FRIEND_COLUMNS])
        if np.isnan(friends[0]):
            return None
        scores = np.array([columns[c][0] for c in SCORE_COLUMNS])
        keep = ~np.isnan(friends)
        return friends[keep][:k].astype(np.int64), scores[keep][:k]

    def _embeddings(self, model: FriendModel) -> np.ndarray:
        """The model's node vectors over the whole current graph (users who joined after training: zeros)."""
        vectors = model.embeddings
        nodes = self.graph.shape[0]
        if len(vectors) >= nodes:
            return vectors
        cached = self._padded.get(id(model))
        if cached is None or cached[0] is not model or len(cached[1]) != nodes:
            padded = np.vstack([vectors, np.zeros((nodes - len(vectors), vectors.shape[1]), np.float32)])
            self._padded = {id(model): (model, padded)}  # one model's at a time: the last one asked for
            cached = self._padded[id(model)]
        return cached[1]

    def _online(self, model: FriendModel, user: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        if user >= self.graph.shape[0]:
            return np.zeros(0, np.int64), np.zeros(0)
        found, columns = user_candidates(self.graph, self.degree, self._embeddings(model), user, model.profiles)
        return model.rank(found, columns, k)

    def score(self, body: dict[str, Any], request_id: str) -> tuple[dict[str, Any], FeatureLogRecord]:
        user, k = int(body["user_id"]), int(body.get("k") or 10)
        arm, model, version = self.arms.pick(user)
        assert isinstance(model, FriendModel)
        listed = None
        if user not in self.stale and version == self.lists_version:
            listed = self._precomputed(user, k)
        path = "precomputed" if listed is not None else "online"
        friends, scores = listed if listed is not None else self._online(model, user, k)
        self.paths[path] += 1
        at_s = float(body["timestamp"]) if body.get("timestamp") is not None else time.time()
        du = self.degree[user] if user < len(self.degree) else 0.0  # listed friends are always in the graph
        dv = self.degree[friends]
        record = FeatureLogRecord(
            request_id=request_id, at_us=round(at_s * 1e6), model_version=version, arm=arm,
            entities={"user_id": [user] * len(friends)}, items=[str(f) for f in friends.tolist()],
            features={"degree_min": np.minimum(du, dv).tolist(), "degree_max": np.maximum(du, dv).tolist()},
            predictions=scores.tolist(), extra={"path": path})
        ranked = [{"user_id": f, "score": s} for f, s in zip(friends.tolist(), scores.tolist(), strict=True)]
        return {"request_id": request_id, "model_version": version, "arm": arm, "path": path,
                "ranked": ranked}, record

    def intake(self, body: dict[str, Any]) -> dict[str, Any]:
        """New friendships: durable (one event per side), streamed into ``user_friends``, in the graph."""
        records, pairs = [], []
        for i, edge in enumerate(body["edges"]):
            u, v = int(edge["user_id"]), int(edge["friend_id"])
            if u == v:  # well-formed, but against the graph's rule: a conflict (409), nothing written
                raise MlsdError(f"edges[{i}].friend_id: a user cannot befriend themself ({u})")
            at = int(edge["timestamp"]) if edge.get("timestamp") is not None else int(time.time())
            base = edge.get("event_id") or f"{min(u, v)}-{max(u, v)}@{at}"
            records += [{"event_id": f"{base}:{side}", "user_id": a, "friend_id": b, "ts": at}
                        for side, (a, b) in enumerate(((u, v), (v, u)))]
            pairs.append((u, v))
        try:
            result = self.intake_push.push(records)
        except PushRejectedError as exc:
            raise RequestError([{**e, "field": f"edges{e['field']}"} for e in exc.errors]) from None
        self._add(np.array(pairs, np.int64))
        return {"accepted": result.accepted // 2, "duplicates": result.duplicates // 2}

    def _add(self, pairs: np.ndarray) -> None:
        nodes = max(self.graph.shape[0], int(pairs.max()) + 1)
        graph = self.graph
        if nodes > graph.shape[0]:
            graph = sparse.csr_matrix((graph.data, graph.indices,
                                       np.concatenate([graph.indptr, np.full(nodes - graph.shape[0],
                                                                             graph.indptr[-1])])),
                                      shape=(nodes, nodes))
        added = adjacency(pairs, nodes)
        self.graph = (graph + added).tocsr()
        self.graph.data[:] = 1.0
        self.degree = np.asarray(self.graph.sum(axis=1)).ravel()
        for u, v in pairs.tolist():  # whose friends of friends changed: both sides and their friends
            for side in (u, v):
                self.stale.add(side)
                self.stale.update(self.graph.indices[self.graph.indptr[side]:self.graph.indptr[side + 1]].tolist())

    def health(self) -> dict[str, Any]:
        return {"users": int(self.graph.shape[0]), "stale_users": len(self.stale), "paths": dict(self.paths),
                "lists_version": self.lists_version, "model_swaps": self.models.swaps, "ab_share": self.arms.share}

    def close(self) -> None:
        self.arms.close()
        self.store.online.close()
        self.log.close()
