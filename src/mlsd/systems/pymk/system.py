"""The people-you-may-know system on the System API (cheap to import)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlsd.system import Option, ReplayConfig, RunConfig, ServeConfig, TaskType, Workspace

if TYPE_CHECKING:
    from mlsd.features import FeatureStore
    from mlsd.reporting import DesignReport
    from mlsd.serving.protocols import ScoringService
    from mlsd.simulation.replay import ReplaySource


def _ci(values: list[float] | None) -> str:
    return f"{values[0]:.4f}-{values[1]:.4f}" if values else "-"


class PymkSystem:
    """People you may know (the book's chapter 11) on SNAP ego-Facebook and CollegeMsg."""

    name = "pymk"
    task = TaskType.RANKING
    summary = "people you may know: friends-of-friends ranked by graph features, precomputed per user (SNAP)"
    datasets = ("snap-ego-facebook", "snap-ego-facebook-circles", "snap-collegemsg")
    route = "/v1/pymk/recommend"
    p99_budget_ms = 2.0  # the serving budget the report checks the last replay against
    model_name = "pymk-facebook"
    options = (Option("refresh_s", 5.0, "seconds between refreshes of the lists new friendships made stale "
                      "(0: never; stale users are then served by the online path)", float, verbs=("serve",)),)

    def build(self, ws: Workspace, config: RunConfig) -> dict[str, Any]:
        from mlsd.systems.pymk.build import build_pymk

        return build_pymk(ws, config.data, small=config.small, progress=config.progress)

    def format_results(self, results: Mapping[str, Any]) -> str:
        a, b, c = results["node2vec_protocol"], results["recommend"], results.get("temporal")
        pre = results["precompute"]
        lines = [f"{'protocol':16s} {'metric':10s} {'ranker':>8s} {'95% CI':>15s} {'Adamic-Adar':>11s} {'95% CI':>15s}",
                 f"{'(a) node2vec':16s} {'ROC-AUC':10s} {a['auc']:8.4f} {_ci(a['auc_ci95']):>15s} "
                 f"{a['adamic_adar_auc']:11.4f} {_ci(a['adamic_adar_auc_ci95']):>15s}"]
        for m in ("recall@10", "map@10", "ndcg@10"):
            lines.append(f"{'(b) top-10':16s} {m:10s} {b[m]:8.4f} {_ci(b[f'{m}_ci95']):>15s} "
                         f"{b[f'adamic_adar_{m}']:11.4f} {_ci(b[f'adamic_adar_{m}_ci95']):>15s}")
        if c:
            lines.append(f"{'(c) CollegeMsg':16s} {'AP':10s} {c['ap']:8.4f} {_ci(c['ap_ci95']):>15s} "
                         f"{c['adamic_adar_ap']:11.4f} {_ci(c['adamic_adar_ap_ci95']):>15s}")
            lines.append(f"{'':16s} {'AP recency':10s} {c['recency_ap']:8.4f} {_ci(c['recency_ap_ci95']):>15s}   "
                         f"({c['new_contacts_among_candidates']:.1%} of new contacts are friends of friends)")
        seeds = a["seeds"]
        lines.append(f"(a) over {seeds['n']} seeds: AUC {seeds['auc_mean']:.4f} ± {seeds['auc_sd']:.4f}, Adamic-Adar "
                     f"{seeds['adamic_adar_auc_mean']:.4f} ± {seeds['adamic_adar_auc_sd']:.4f}; (b) nDCG@10 ranker "
                     f"minus Adamic-Adar {b['ndcg_gain_over_adamic_adar']['mean']:+.4f} "
                     f"[{b['ndcg_gain_over_adamic_adar']['ci95'][0]:+.4f}, "
                     f"{b['ndcg_gain_over_adamic_adar']['ci95'][1]:+.4f}]")
        lines.append(f"batch precompute: {pre['users']} users, {pre['candidate_rows']:,} pairs in {pre['seconds']} s "
                     f"({pre['rows_per_s']:,} rows/s); champion {results['served']['champion_family']}")
        return "\n".join(lines)

    def json_summary(self, results: Mapping[str, Any]) -> dict[str, Any]:
        a, b, c = results["node2vec_protocol"], results["recommend"], results.get("temporal") or {}
        return {"node2vec_protocol": {k: v for k, v in a.items() if k != "runs"},
                "recommend": b, "temporal": c,
                "precompute": results["precompute"], "served": results["served"]}

    def feature_store(self, ws: Workspace) -> FeatureStore:
        """The friends and precomputed-list views over the home's friendship log (read-only) and online store."""
        from mlsd.events import EventLog
        from mlsd.systems.pymk.data import EDGE_SCHEMA
        from mlsd.systems.pymk.features import pymk_views

        log = EventLog(ws.events("friendships"), EDGE_SCHEMA, writer=False)
        return ws.feature_store(pymk_views(log, ws.home / "lists"))

    def service(self, ws: Workspace, config: ServeConfig) -> ScoringService:
        from mlsd.systems.pymk.serve import PymkService

        refresh_s = float(config.options.get("refresh_s", 5.0))
        return PymkService(ws.home, ab_share=config.ab_share, window_s=config.window_s,
                           label_delay_s=config.label_delay_s, thresholds=config.thresholds(),
                           refresh_s=refresh_s if refresh_s > 0 else None)

    def traffic(self, ws: Workspace, config: ReplayConfig) -> ReplaySource:
        from mlsd.systems.pymk.simulate import FriendReplay

        return FriendReplay(ws, limit=config.limit)

    def report(self, ws: Workspace, report: DesignReport) -> None:
        from mlsd.systems.pymk.report import fill_pymk_report

        fill_pymk_report(ws, report)


SYSTEM = PymkSystem()
