"""``make demo``: the ads system end to end, then a replay with an A/B test, monitoring and the report.

ingest -> features -> train -> register (``mlsd run ads``) -> serve (``mlsd serve ads`` as a child
process, champion vs challenger on hashed users) -> replay the held-out traffic through HTTP with
delayed labels and an injected drift (none with ``--no-drift``: a clean replay) -> the service's
monitor computes drift, alerts and online metrics -> the design report. Real TalkingData when a data
directory is given, the generated ad marketplace otherwise. Writes ``summary.json`` with the offline
metrics, the A/B result, the drift detection delay, the false alarms, the serving p99 and the
report's path.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mlsd.core.atomic import atomic_write_json
from mlsd.datasets.marketplace import AdMarketplace
from mlsd.monitoring.outcomes import drift_outcome
from mlsd.simulation.process import ServerProcess
from mlsd.simulation.replay import ReplayResult, ServiceClient, replay, wait_for_monitor
from mlsd.systems.ads.replay import ClickLogReplay, MarketplaceReplay, MarketplaceTraffic
from mlsd.systems.ads.report import REPLAY_FILE, write_report
from mlsd.systems.ads.run import AdsRun, served_dataset
from mlsd.systems.ads.service import AdsService
from mlsd.systems.ads.training import MODELS


@dataclass
class AdsDemo:
    """One end-to-end demo run under ``out``; ``run`` returns the summary it writes."""

    out: Path = Path("runs/demo")
    data: str | None = None
    models: Sequence[str] = MODELS
    ab_share: float = 0.5
    window_s: float = 1800.0
    label_delay_s: float = 600.0
    speed: float | None = None  # event seconds per wall second; None: as fast as the service answers
    drift: bool = True  # inject a drift into the replayed traffic (False: a clean replay)
    drift_at_hours: float | None = None  # after the replayed period's start (default: half of it)
    drift_share: float = 0.3
    marketplace_rows: int = 250_000  # over 7 days; the replay keeps the same traffic rate
    traffic: MarketplaceTraffic | None = None
    replay_limit: int | None = None
    progress: bool = True

    def say(self, text: str) -> None:
        tqdm.write(text)

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        home = self.out / "home"
        self.say("[1/5] ingest -> features -> train -> register")
        results = AdsRun(home, data=self.data, models=self.models, progress=self.progress,
                         marketplace_rows=self.marketplace_rows, flat_datasets=False).run()
        dataset = next(iter(results))
        for stale in ("feature_log", "labels", "monitoring"):  # this run's monitor sees this run's traffic only
            shutil.rmtree(home / stale, ignore_errors=True)
        self.say(f"[2/5] serve: mlsd serve ads (champion vs challenger on {self.ab_share:.0%} of users)")
        args = ["--ab-share", str(self.ab_share), "--window-s", str(self.window_s),
                "--label-delay-s", str(self.label_delay_s)]
        with ServerProcess("ads", home, args) as server:
            traffic = self.traffic or MarketplaceTraffic(self.marketplace_rows / 7)
            drift_at_hours = self._drift_hours(dataset, traffic)
            self.say(f"[3/5] replay the held-out {dataset} traffic through HTTP (labels {self.label_delay_s:.0f} s "
                     f"late, {'no drift' if drift_at_hours is None else f'a drift from hour {drift_at_hours:g}'})")
            result, drift_at = replay_service(home, server.client, speed=self.speed, label_delay_s=self.label_delay_s,
                                              drift_at_hours=drift_at_hours, drift_share=self.drift_share,
                                              traffic=traffic, limit=self.replay_limit, progress=self.progress)
            assert result.last_at_s is not None
            self.say(f"      {result.requests:,} requests in {result.wall_s:.1f} s, {result.errors} errors, "
                     f"p99 {result.latency_ms.get('p99', float('nan')):.2f} ms")
            self.say("[4/5] monitor: waiting for the service's monitor to take in every label")
            state = wait_for_monitor(server.client, result.last_at_s + self.label_delay_s)
            status, metrics_text = server.client.request("GET", "/metrics")
        summary = self._summary(dataset, results[dataset], result, state, drift_at)
        summary["alerts_on_metrics"] = status == 200 and "mlsd_drift_alerts" in str(metrics_text)
        self.say("[5/5] report")
        report = write_report(home, self.out / "report.html")
        summary["report"] = str(report)
        summary["seconds"] = round(time.perf_counter() - started, 1)
        atomic_write_json(self.out / "summary.json", summary)
        self.say(format_summary(summary))
        self.say(f"report: {report}\nsummary: {self.out / 'summary.json'}")
        return summary

    def _drift_hours(self, dataset: str, traffic: MarketplaceTraffic) -> float | None:
        """When the drift starts, in hours after the replayed period's start (None: no drift)."""
        if not self.drift:
            return None
        if self.drift_at_hours is not None:
            return self.drift_at_hours
        # half way: TalkingData's held-out day has 16 hours of clicks; the marketplace replays traffic.days
        return 8.0 if dataset == "talkingdata" else traffic.days * 12.0

    def _summary(self, dataset: str, models: Mapping[str, Any], result: ReplayResult, state: Mapping[str, Any],
                 drift_at: float | None) -> dict[str, Any]:
        delay, false_alarms, rate = drift_outcome(state, drift_at)
        ab = dict(state.get("ab") or {})
        for arm, shown in result.arms.items():
            ab.setdefault(arm, {})["replay_shown"] = shown
        return {"dataset": dataset, "models": dict(models), "ab": ab,
                "drift_detection_delay_s": delay, "false_alarms": false_alarms, "false_alarm_rate": rate,
                "drift_at_s": drift_at, "serve_p99_ms": result.latency_ms.get("p99"),
                "serve_latency_ms": result.latency_ms, "replay": result.to_dict(),
                "windows": len(state.get("windows", [])), "alerts": len(state.get("alerts", []))}


def _tick(bar: tqdm[Any]) -> None:
    bar.update(1)


def ads_traffic(home: Path, *, drift_at_hours: float | None = None, drift_share: float = 0.3,
                traffic: MarketplaceTraffic | None = None,
                limit: int | None = None) -> ClickLogReplay | MarketplaceReplay:
    """The home's held-out traffic: the click log's test day, or fresh marketplace traffic, with a drift in it."""
    source: ClickLogReplay | MarketplaceReplay
    if served_dataset(home) == "marketplace":
        plan = traffic or MarketplaceTraffic()
        if drift_at_hours is not None:
            plan = MarketplaceTraffic(**{**plan.__dict__, "drift_at_hours": drift_at_hours})
        source = MarketplaceReplay(home, AdMarketplace(0), plan, limit=limit)
    else:
        source = ClickLogReplay(home, drift_share=drift_share, limit=limit)
        if drift_at_hours is not None:
            source.drift_at_s = source.start_s + drift_at_hours * 3600
    return source


def replay_service(home: Path, client: ServiceClient, *, speed: float | None = None, label_delay_s: float = 600.0,
                   drift_at_hours: float | None = None, drift_share: float = 0.3,
                   traffic: MarketplaceTraffic | None = None, limit: int | None = None,
                   progress: bool = True) -> tuple[ReplayResult, float | None]:
    """Replay the home's held-out traffic through a running ads service; writes ``replay.json``."""
    source = ads_traffic(home, drift_at_hours=drift_at_hours, drift_share=drift_share, traffic=traffic, limit=limit)
    total = (min(source.requests, limit or source.requests) if isinstance(source, MarketplaceReplay) else limit)
    bar = tqdm(total=total, unit="req", disable=None if progress else True, mininterval=1.0)
    try:
        result = replay(source, client, route=AdsService.route, speed=speed, label_delay_s=label_delay_s,
                        on_progress=lambda n: _tick(bar))
    finally:
        bar.close()
        source.close()
    atomic_write_json(home / REPLAY_FILE, {**result.to_dict(), "drift_at_s": source.drift_at_s,
                                           "dataset": served_dataset(home)})
    return result, source.drift_at_s


def format_summary(summary: Mapping[str, Any]) -> str:
    """The end-of-demo table: offline metrics per model, A/B arms, monitoring and serving figures."""
    lines = [f"{'model':8s} {'AUC':>7s} {'NE':>6s} {'calib':>6s}"]
    for kind, m in summary["models"].items():
        lines.append(f"{kind:8s} {m.get('auc', float('nan')):7.4f} {m.get('ne', float('nan')):6.3f} "
                     f"{m.get('calibration', float('nan')):6.3f}")
    ab = summary.get("ab") or {}
    for arm in ("champion", "challenger"):
        if arm in ab and "rows" in ab[arm]:
            a = ab[arm]
            lines.append(f"A/B {arm:10s} rows {a['rows']:6d}  rate {a['rate']:.4f}  calibration "
                         f"{a['calibration'] if a['calibration'] is not None else float('nan'):.3f}")
    if "p_value" in ab:
        lines.append(f"A/B rate difference {ab['rate_difference']:+.4f}  p = {ab['p_value']:.4f}")
    lines.append(f"drift detection delay {summary['drift_detection_delay_s']} s, false alarms "
                 f"{summary['false_alarms']} (rate {summary['false_alarm_rate']}), serve p99 "
                 f"{summary['serve_p99_ms']} ms")
    return "\n".join(lines)
