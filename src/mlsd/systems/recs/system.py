"""The video-recommendation system on the System API (cheap to import)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlsd.system import Option, ReplayConfig, RunConfig, ServeConfig, TaskType, Workspace

if TYPE_CHECKING:
    from mlsd.features import FeatureStore
    from mlsd.reporting import DesignReport
    from mlsd.serving.protocols import ScoringService
    from mlsd.simulation.replay import ReplaySource

SMALL_USERS = 150


class RecsSystem:
    """Video recommendation (the book's chapter 6) on MovieLens: retrieval, ranking, re-ranking."""

    name = "recs"
    task = TaskType.RANKING
    summary = "video recommendation: top-k unseen movies per user (MovieLens)"
    datasets = ("movielens-100k", "movielens-1m-first-half")
    route = "/v1/recs/recommend"
    model_name = "recs-movielens"
    engines = ("embedded", "ray")  # mlsd run recs --engine ray: the two-tower models and rankers on Ray Train
    window_s = 7 * 86_400.0  # the held-out period is ~7 weeks of a few hundred users: weekly windows
    options = (Option("dataset", "ml-100k", "the MovieLens release", choices=("ml-100k", "ml-1m-first-half")),
               Option("peers", False, "protocol A on 5 split seeds with cornac's BPR, BiVAE and EASE beside the "
                      "pipeline (~13 min on 2 cores)", type=bool))

    def build(self, ws: Workspace, config: RunConfig) -> dict[str, Any]:
        from mlsd.scale.engines import training_engine
        from mlsd.systems.recs.build import build_recs
        from mlsd.systems.recs.peers import PEERS

        return build_recs(ws, config.data, str(config.options.get("dataset") or "ml-100k"),
                          quiet=not config.progress, users=SMALL_USERS if config.small else None,
                          peers=PEERS if config.options.get("peers") else (),
                          engine=training_engine(config.engine, config.workers))

    def format_results(self, results: Mapping[str, Any]) -> str:
        from mlsd.systems.recs.tables import format_tables

        return format_tables(dict(results))

    def json_summary(self, results: Mapping[str, Any]) -> dict[str, Any]:
        from mlsd.systems.recs.tables import summary

        return summary(dict(results))

    def feature_store(self, ws: Workspace) -> FeatureStore:
        """The served store: user and item views over the serving rating log (read-only) and its online store."""
        from mlsd.events import EventLog
        from mlsd.systems.recs.build import SERVING
        from mlsd.systems.recs.features import RATINGS_SCHEMA, recs_views

        serving = ws.home / SERVING
        log = EventLog(serving / "events", RATINGS_SCHEMA, writer=False)
        return ws.feature_store(recs_views(log, serving / "profiles"), online_db=serving / "online.db")

    def service(self, ws: Workspace, config: ServeConfig) -> ScoringService:
        from mlsd.systems.recs.serve import RecsService

        return RecsService(ws.home, ab_share=config.ab_share, window_s=config.window_s,
                           label_delay_s=config.label_delay_s,
                           thresholds=config.thresholds())

    def traffic(self, ws: Workspace, config: ReplayConfig) -> ReplaySource:
        from mlsd.systems.recs.simulate import HeldOutReplay

        return HeldOutReplay(ws, limit=config.limit)

    def report(self, ws: Workspace, report: DesignReport) -> None:
        from mlsd.systems.recs.report import fill_recs_report

        fill_recs_report(ws.home, report)


SYSTEM = RecsSystem()
