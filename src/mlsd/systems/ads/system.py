"""The ads system on the System API: ``mlsd run|serve|replay|report|demo ads`` (cheap to import)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsd.system import Option, ReplayConfig, RunConfig, ServeConfig, TaskType, Workspace

if TYPE_CHECKING:
    from mlsd.features import FeatureStore
    from mlsd.reporting import DesignReport
    from mlsd.serving.protocols import ScoringService
    from mlsd.simulation.replay import ReplaySource

MODELS = ("logreg", "lgbm", "dcn_v2", "ffm")
# The monitor's window; `mlsd run ads` calibrates each column's drift thresholds on windows this long.
MONITOR_WINDOW_S = 1800.0


class AdsSystem:
    """Ad click prediction (the book's chapter 8) on TalkingData, or the generated ad marketplace."""

    name = "ads"
    task = TaskType.BINARY
    summary = "ad click prediction: calibrated click probabilities for candidate ads"
    datasets = ("talkingdata", "criteo", "ipinyou")
    route = "/v1/ads/score"
    engines = ("embedded", "ray")  # mlsd run ads --engine ray
    options = (Option("models", ",".join(MODELS), "comma-separated model kinds (default: all)"),)
    window_s = MONITOR_WINDOW_S

    @property
    def model_name(self) -> str:
        return "ads-talkingdata"

    def served_model_name(self, ws: Workspace) -> str:
        from mlsd.systems.ads.run import model_name, served_dataset

        return model_name(served_dataset(ws.home))

    def build(self, ws: Workspace, config: RunConfig) -> dict[str, Any]:
        from mlsd.systems.ads.run import AdsRun

        models = str(config.options.get("models") or ",".join(MODELS)).split(",")
        if config.small:  # the generated marketplace, two quick models, no flat datasets
            from mlsd.datasets.marketplace import AdMarketplace, click_log

            run = AdsRun(home=ws.home, models=["logreg", "lgbm"], progress=config.progress, flat_datasets=False,
                         clicks=click_log(AdMarketplace(0), 60_000, days=4.0), dataset="marketplace")
        else:
            run = AdsRun(home=ws.home, data=config.data, progress=config.progress, models=models)
        run.engine, run.train_workers = config.engine, config.workers
        return {"results": run.run()}

    def format_results(self, results: Mapping[str, Any]) -> str:
        from mlsd.systems.ads.run import format_table

        return format_table(results["results"])

    def json_summary(self, results: Mapping[str, Any]) -> dict[str, Any]:
        """``--json``: ``{dataset: {model: test metrics}}``."""
        return dict(results["results"])

    def feature_store(self, ws: Workspace) -> FeatureStore:
        """The click views over the home's event log (read-only) and online store (``mlsd features|materialize``)."""
        from mlsd.datasets import TALKINGDATA_SCHEMA
        from mlsd.events import EventLog
        from mlsd.systems.ads.features import ads_views

        return ws.feature_store(ads_views(EventLog(ws.events("clicks"), TALKINGDATA_SCHEMA, writer=False)))

    def service(self, ws: Workspace, config: ServeConfig) -> ScoringService:
        from mlsd.systems.ads.service import AdsService

        return AdsService(ws.home, ab_share=config.ab_share, window_s=config.window_s,
                          label_delay_s=config.label_delay_s,
                          thresholds=config.thresholds())

    def traffic(self, ws: Workspace, config: ReplayConfig) -> ReplaySource:
        from mlsd.systems.ads.demo import ads_traffic

        return ads_traffic(ws.home, drift_at_hours=config.drift_at_hours, limit=config.limit)

    def report(self, ws: Workspace, report: DesignReport) -> None:
        from mlsd.systems.ads.report import fill_report

        fill_report(ws.home, report)

    def demo(self, out: Path, config: RunConfig, speed: float | None, *, drift: bool = True,
             drift_at_hours: float | None = None) -> dict[str, Any]:
        """The ads demo: run, serve with an A/B test, replay (with a drift injected unless ``drift`` is
        False: half way through the period, or ``drift_at_hours`` into it), monitor, report."""
        from mlsd.systems.ads.demo import AdsDemo

        return AdsDemo(out=out, data=config.data, speed=speed, progress=config.progress, drift=drift,
                       drift_at_hours=drift_at_hours).run()


SYSTEM = AdsSystem()
