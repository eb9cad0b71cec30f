"""The search ranking system on the System API (cheap to import)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlsd.system import ReplayConfig, RunConfig, ServeConfig, TaskType, Workspace

if TYPE_CHECKING:
    from mlsd.features import FeatureStore
    from mlsd.reporting import DesignReport
    from mlsd.serving.protocols import ScoringService
    from mlsd.simulation.replay import ReplaySource

HEADLINE = ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "ndcg@10_letor", "map_letor", "mrr")


class SearchSystem:
    """Search ranking (the book's learning-to-rank chapter) on LETOR 4.0 MQ2008."""

    name = "search"
    task = TaskType.RANKING
    summary = "search ranking: documents of a query ranked by LambdaMART (LETOR MQ2008)"
    datasets = ("letor-mq2008",)
    route = "/v1/search/rank"
    model_name = "search-mq2008"
    options = ()

    def build(self, ws: Workspace, config: RunConfig) -> dict[str, Any]:
        from mlsd.systems.search.build import build_search

        return build_search(ws, config.data, small=config.small, progress=config.progress)

    def format_results(self, results: Mapping[str, Any]) -> str:
        lines = [f"{'fold':6s} " + " ".join(f"{k:>13s}" for k in HEADLINE)]
        for f in results["folds"]:
            lines.append(f"{f['fold']:<6d} " + " ".join(f"{f[k]:13.4f}" for k in HEADLINE))
        lines.append(f"{'mean':6s} " + " ".join(f"{results['mean'][k]:13.4f}" for k in HEADLINE))
        lines.append(f"{'point':6s} " + " ".join(f"{results['pointwise_mean'][k]:13.4f}" for k in HEADLINE))
        if "ci95" in results:
            lines.append(f"{'95%':6s} " + " ".join(f"{f'{lo:.3f}-{hi:.3f}':>13s}" for lo, hi in
                                                   (results["ci95"][k] for k in HEADLINE)))
            gain = results["lambdamart_minus_pointwise"]
            lines.append(f"bootstrap over {results['test_queries']} test queries; LambdaMART minus pointwise: "
                         + ", ".join(f"{k} {g['mean']:+.4f} [{g['ci95'][0]:+.4f}, {g['ci95'][1]:+.4f}]"
                                     for k, g in gain.items()))
        lines.append("plain keys: linear gain, all-zero queries 0; _letor: LETOR 4.0's official evaluation; "
                     "'point': the pointwise peer")
        return "\n".join(lines)

    def json_summary(self, results: Mapping[str, Any]) -> dict[str, Any]:
        keys = ("ndcg@10", "ndcg@10_letor", "map_letor")
        return {"folds": [{"fold": f["fold"], **{k: f[k] for k in keys}} for f in results["folds"]],
                "mean": dict(results["mean"]), "pointwise_mean": dict(results["pointwise_mean"]),
                **{k: results[k] for k in ("ci95", "lambdamart_minus_pointwise", "test_queries") if k in results}}

    def feature_store(self, ws: Workspace) -> FeatureStore:
        """The query-document views over the home's judgment log (read-only) and online store."""
        from mlsd.events import EventLog
        from mlsd.systems.search.data import JUDGMENT_SCHEMA
        from mlsd.systems.search.features import search_views

        return ws.feature_store(search_views(EventLog(ws.events("judgments"), JUDGMENT_SCHEMA, writer=False)))

    def service(self, ws: Workspace, config: ServeConfig) -> ScoringService:
        from mlsd.systems.search.serve import SearchService

        return SearchService(ws.home, ab_share=config.ab_share, window_s=config.window_s,
                             label_delay_s=config.label_delay_s,
                             thresholds=config.thresholds())

    def traffic(self, ws: Workspace, config: ReplayConfig) -> ReplaySource:
        from mlsd.systems.search.simulate import QueryReplay

        return QueryReplay(ws, limit=config.limit)

    def report(self, ws: Workspace, report: DesignReport) -> None:
        from mlsd.systems.search.report import fill_search_report

        fill_search_report(ws, report)


SYSTEM = SearchSystem()
