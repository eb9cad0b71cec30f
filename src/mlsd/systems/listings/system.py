"""The similar listings system on the System API (cheap to import)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlsd.system import ReplayConfig, RunConfig, ServeConfig, TaskType, Workspace

if TYPE_CHECKING:
    from mlsd.features import FeatureStore
    from mlsd.reporting import DesignReport
    from mlsd.serving.protocols import ScoringService
    from mlsd.simulation.replay import ReplaySource

ROWS = ("session_blend", "transitions_recency", "embedding_ann", "last_item", "covisitation")


class ListingsSystem:
    """Similar listings (the book's session-based recommendation chapter) on the Diginetica sample."""

    name = "listings"
    task = TaskType.RANKING
    summary = "similar listings: next-click candidates from the session's items (Diginetica, SR-GNN protocol)"
    datasets = ("diginetica-sample",)
    route = "/v1/listings/similar"
    p99_budget_ms = 10.0  # the serving budget the report checks the last replay against
    model_name = "listings-diginetica"
    options = ()
    window_s = 86_400.0  # the replay spans a week of test sessions: daily windows

    def build(self, ws: Workspace, config: RunConfig) -> dict[str, Any]:
        from mlsd.systems.listings.build import build_listings

        return build_listings(ws, config.data, small=config.small, progress=config.progress)

    def format_results(self, results: Mapping[str, Any]) -> str:
        models = results["models"]
        lines = [f"{'model':22s} {'HR@20':>7s} {'95% CI':>13s} {'MRR@20':>7s} {'95% CI':>13s}"]
        for key in ROWS:
            m = models[key]
            hr, mrr = m["ci95"]["hr@20"], m["ci95"]["mrr@20"]
            lines.append(f"{key:22s} {m['hr@20']:7.1f} {f'{hr[0]:.1f}-{hr[1]:.1f}':>13s} {m['mrr@20']:7.1f} "
                         f"{f'{mrr[0]:.1f}-{mrr[1]:.1f}':>13s}")
        seeds = results["seeds"]
        lines.append(f"{results['test_prefixes']} test prefixes of {results['test_sessions']} sessions (SR-GNN "
                     f"preprocessing); intervals: bootstrap over sessions; over {seeds['n']} seeds: HR@20 "
                     f"{seeds['hr@20_mean']:.1f} ± {seeds['hr@20_sd']:.1f}, MRR@20 {seeds['mrr@20_mean']:.1f} ± "
                     f"{seeds['mrr@20_sd']:.1f}")
        lines.append("paired gains (bootstrap over sessions): " + ", ".join(
            f"{k} {g['mean']:+.1f} [{g['ci95'][0]:+.1f}, {g['ci95'][1]:+.1f}]" for k, g in results["gains"].items()))
        return "\n".join(lines)

    def json_summary(self, results: Mapping[str, Any]) -> dict[str, Any]:
        keys = ("test_prefixes", "hr@20", "mrr@20", "last_item_hr@20", "last_item_mrr@20", "seeds", "ci95", "models",
                "gains", "served", "seconds")
        return {k: results[k] for k in keys if k in results}

    def feature_store(self, ws: Workspace) -> FeatureStore:
        """The session-state view over the home's click log (read-only) and online store."""
        from mlsd.events import EventLog
        from mlsd.systems.listings.data import CLICK_SCHEMA
        from mlsd.systems.listings.features import listings_views

        return ws.feature_store(listings_views(EventLog(ws.events("clicks"), CLICK_SCHEMA, writer=False)))

    def service(self, ws: Workspace, config: ServeConfig) -> ScoringService:
        from mlsd.systems.listings.serve import ListingsService

        return ListingsService(ws.home, ab_share=config.ab_share, window_s=config.window_s,
                               label_delay_s=config.label_delay_s,
                               thresholds=config.thresholds())

    def traffic(self, ws: Workspace, config: ReplayConfig) -> ReplaySource:
        from mlsd.systems.listings.simulate import SessionReplay

        return SessionReplay(ws, limit=config.limit)

    def report(self, ws: Workspace, report: DesignReport) -> None:
        from mlsd.systems.listings.report import fill_listings_report

        fill_listings_report(ws, report)


SYSTEM = ListingsSystem()
