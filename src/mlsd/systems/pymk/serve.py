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

Stale lists are refreshed incrementally (:meth:`PymkService.refresh`, every ``refresh_s`` on a background
thread): the stale users' lists are computed by that same online path, written as a new file of the
lists view's table and materialized, and those users go back to the lookup. The online store keeps
how many logged friendships the served lists reflect (``LISTS_POSITION``), advanced only when no user
is left stale; a restarted service marks stale again every user the friendships after it touch, so a
restart never serves a list older than the graph. When the champion changes (a promotion, a
rollback), the refresh re-precomputes every user's list with it over the current graph, the batch
job the build runs, and the lookup serves the new champion's lists from then on (``LISTS_VERSION``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from mlsd.core.errors import MlsdError
from mlsd.core.records import FeatureLogRecord
from mlsd.events import EventLog
from mlsd.features import PushIntake, PushRejectedError, encode_keys
from mlsd.monitoring.drift import DriftThresholds
from mlsd.monitoring.online import MonitorConfig
from mlsd.monitoring.profile import DatasetProfile
from mlsd.registry import CHAMPION, ModelRegistry
from mlsd.serving.models import Arms, ModelHolder
from mlsd.serving.protocols import RANKING_LABEL_SCHEMA
from mlsd.serving.validation import Field, RequestError, Schema, event_time
from mlsd.systems.pymk.build import MODEL_NAME, PROFILE_FILE, precompute
from mlsd.systems.pymk.data import EDGE_SCHEMA
from mlsd.systems.pymk.features import (
    FRIENDS_VIEW,
    LIST_FEATURES,
    LIST_K,
    LISTS_POSITION,
    LISTS_VERSION,
    LISTS_VIEW,
    compact_lists,
    pymk_views,
    write_lists,
)
from mlsd.systems.pymk.graph import adjacency, user_candidates
from mlsd.systems.pymk.model import FriendModel

FRIENDS_AT, SCORES_AT = LIST_FEATURES.index("friend_1"), LIST_FEATURES.index("score_1")  # in the view's row
MAX_USERS = 1_000_000  # user ids 0..MAX_USERS-1: the in-memory graph is sized by the largest id
MAX_EDGES = 10_000
log = logging.getLogger(__name__)
REFRESH_BATCH = 200  # stale users per refresh file: bounds the time one refresh holds the interpreter
CACHED_ROWS = 200_000  # list rows kept in memory (~0.5 KB each); past it, reads go to the store only
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
                 poll_interval: float = 10.0, refresh_s: float | None = 5.0) -> None:
        from mlsd.system import Workspace

        self.ws = Workspace(home)
        self.intake_schema = edges_schema(time.time())
        state = self.ws.run_state() or {}
        self.monitor_config = MonitorConfig(window_s=window_s, label_delay_s=label_delay_s, k=10,
                                            thresholds=thresholds or DriftThresholds(), task="ranking")
        try:
            self.log = EventLog(self.ws.events("friendships"), EDGE_SCHEMA)
        except MlsdError:
            raise MlsdError("another process owns this home's friendship log: serve pymk with one worker") from None
        self.store = self.ws.feature_store(pymk_views(self.log, self.ws.home / "lists"))
        self.intake_push = PushIntake(self.store, self.log, [FRIENDS_VIEW])
        # the version whose lists the store holds: the last re-precompute's, else the build's
        self.lists_version = self.store.online.get_meta(LISTS_VERSION) or str(
            state.get("served", {}).get("lists_version", ""))
        pairs = self.log.read(["user_id", "friend_id"])
        edges = np.column_stack([pairs["user_id"].to_numpy(), pairs["friend_id"].to_numpy()])
        self.graph = adjacency(edges, int(edges.max()) + 1 if len(edges) else 1)
        self.degree = np.asarray(self.graph.sum(axis=1)).ravel()
        # stale user -> the edit that last made it so; the lists reflect the log's first `position` events
        self.stale: dict[int, int] = {}
        self._edits = 0
        self._lock = threading.Lock()  # intake's graph edits vs a refresh's snapshot and its clean-up
        position = self.store.online.get_meta(LISTS_POSITION)
        self._mark_stale(edges[int(position):] if position is not None else edges[:0])
        self.registry = ModelRegistry(self.ws.home)
        self.models = ModelHolder(self.registry, MODEL_NAME, CHAMPION, poll_interval)
        self.arms = Arms(self.models, ab_share, experiment, poll_interval)
        self.paths = {"precomputed": 0, "online": 0}
        self.refreshed = 0
        self._padded: dict[int, tuple[FriendModel, np.ndarray]] = {}
        # user -> their row of the lists view, read through from the online store; this service is the
        # lists' only writer, and each write replaces it with an empty one (see _precomputed)
        self._rows: dict[int, np.ndarray] = {}
        self._stop = threading.Event()
        self._refresher = None
        if refresh_s is not None:
            self._refresher = threading.Thread(target=self._refresh_every, args=(refresh_s,), name="pymk-refresh",
                                               daemon=True)
            self._refresher.start()

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
        """The user's listed friends and scores, None if the lists hold no row for the user.

        Rows are kept in memory once read: the SQLite read (a WAL read transaction per query) was a
        third of the lookup's time in process. A refresh writes the store, then replaces ``_rows`` with
        an empty dict; a read keeps its row in the dict it started with, so a read that began before
        the write lands in the discarded one and no row older than the store is ever served.
        """
        rows = self._rows
        row = rows.get(user)
        if row is None:
            # the view's row as one vector (the lookup is the whole request: no per-column dict)
            row = self.store.online_vectors(LISTS_VIEW, encode_keys([[user]]))[0]
            if len(rows) < CACHED_ROWS:
                rows[user] = row
        if np.isnan(row[0]):  # size
            return None
        n = min(int(row[0]), k)
        return row[FRIENDS_AT:FRIENDS_AT + n].astype(np.int64), row[SCORES_AT:SCORES_AT + n].copy()

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

    def _online(self, model: FriendModel, user: int, k: int, graph: sparse.csr_matrix | None = None,
                degree: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        graph = self.graph if graph is None else graph
        degree = self.degree if degree is None else degree
        if user >= graph.shape[0] or degree[user] == 0:  # no friend, so no friend of a friend
            return np.zeros(0, np.int64), np.zeros(0)
        found, columns = user_candidates(graph, degree, self._embeddings(model), user, model.profiles)
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
        with self._lock:  # logged and marked stale together: a refresh's snapshot sees both or neither
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
        graph = (graph + added).tocsr()
        graph.data[:] = 1.0
        self.graph, self.degree = graph, np.asarray(graph.sum(axis=1)).ravel()
        self._mark_stale(pairs)

    def _mark_stale(self, pairs: np.ndarray) -> None:
        """Whose friends of friends ``pairs`` changed: both sides and their friends (in the current graph)."""
        self._edits += 1
        indptr, indices = self.graph.indptr, self.graph.indices
        for side in np.unique(pairs).tolist():
            self.stale[side] = self._edits
            self.stale.update(dict.fromkeys(indices[indptr[side]:indptr[side + 1]].tolist(), self._edits))

    def refresh(self, limit: int | None = REFRESH_BATCH) -> int:
        """Bring the lists view up to date; returns how many users' lists it wrote.

        The champion made the lists: recompute up to ``limit`` stale users' lists by the online path.
        Another champion (promoted or rolled back since): re-precompute every user's list with it over
        the current graph (the build's batch job; seconds, off the request path) and serve its lists
        from then on. A user whose friends of friends changed again meanwhile stays stale.
        """
        with self._lock:
            model, version = self.models.current
            relist = version != self.lists_version
            if not relist and not self.stale:
                return 0
            marks = dict(self.stale) if relist else {user: self.stale[user] for user in sorted(self.stale)[:limit]}
            graph, degree, position = self.graph, self.degree, len(self.log)
        if relist:
            assert isinstance(model, FriendModel)
            lists, seconds, rows = precompute(model, graph, self._embeddings(model)[: graph.shape[0]])
            log.info("pymk: lists of %d users re-precomputed with v%s in %.1f s (%d pairs)", len(lists), version,
                     seconds, rows)
        else:
            lists = {user: self._online(model, user, LIST_K, graph, degree) for user in marks}
        at_us = max(time.time_ns() // 1000, (self.store.materialized_until(LISTS_VIEW) or 0) + 1)
        write_lists(lists, at_us, self.ws.home / "lists", name=f"{'full' if relist else 'refresh'}-{at_us}.parquet")
        self.store.materialize([LISTS_VIEW], end_us=at_us)
        compact_lists(self.ws.home / "lists")  # every file there is materialized now
        with self._lock:
            self._rows = {}  # rows read before the write above may predate it: none is kept
            done = [user for user in marks if self.stale.get(user) == marks[user]]
            for user in done:
                del self.stale[user]
            if relist:
                self.store.online.set_meta(LISTS_VERSION, version)
                self.lists_version = version
            if not self.stale:  # every friendship logged up to the snapshot is in the lists now
                self.store.online.set_meta(LISTS_POSITION, str(position))
        self.refreshed += len(lists)
        return len(lists)

    def _refresh_every(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.refresh()
            except Exception:  # a failed refresh leaves the users stale (served online): log, try again later
                log.exception("pymk: refreshing stale lists failed")

    def health(self) -> dict[str, Any]:
        return {"users": int(self.graph.shape[0]), "stale_users": len(self.stale), "refreshed_users": self.refreshed,
                "paths": dict(self.paths),
                "lists_version": self.lists_version, "model_swaps": self.models.swaps, "ab_share": self.arms.share}

    def close(self) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join()
        self.arms.close()
        self.store.online.close()
        self.log.close()
