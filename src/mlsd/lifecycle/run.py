"""``mlsd replay|demo SYSTEM``: the held-out traffic through a running service, and the whole loop in one go.

The demo is build -> serve (a child process, as a user starts it) -> replay with delayed labels ->
wait for the service's monitor -> the design report, for any system; a system with a demo of its own
(ads injects a drift and runs an A/B test) provides ``demo(out, config, speed)`` instead.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from mlsd.core.atomic import atomic_write_json
from mlsd.monitoring.outcomes import drift_outcome
from mlsd.serving.auth import read_token
from mlsd.simulation.process import ServerProcess
from mlsd.simulation.replay import ReplayResult, ServiceClient, replay, wait_for_monitor
from mlsd.system import ReplayConfig, RunConfig, System, Workspace

REPLAY_FILE = "replay.json"


def replay_system(system: System, ws: Workspace, client: ServiceClient, config: ReplayConfig) -> ReplayResult:
    """Replay ``system``'s held-out traffic through the service behind ``client``; writes ``replay.json``."""
    source = system.traffic(ws, config)
    try:
        result = replay(source, client, route=system.route, speed=config.speed, label_delay_s=config.label_delay_s)
    finally:
        source.close()
    atomic_write_json(ws.home / REPLAY_FILE, {**result.to_dict(), "drift_at_s": getattr(source, "drift_at_s", None)})
    return result


def replay_running(system: System, ws: Workspace, host: str, port: int, config: ReplayConfig) -> dict[str, Any]:
    """``mlsd replay SYSTEM``: against a service someone started; the replay's and the monitor's figures."""
    client = ServiceClient(host, port, token=read_token(ws.home))
    try:
        result = replay_system(system, ws, client, config)
        outcome: dict[str, Any] = {"replay": result.to_dict()}
        status, _ = client.request("GET", "/dashboard/data")
        if status == 200 and result.last_at_s is not None:
            state = wait_for_monitor(client, result.last_at_s + config.label_delay_s)
            drift_at = json.loads((ws.home / REPLAY_FILE).read_text()).get("drift_at_s")  # the source injected it
            outcome.update(monitor_outcome(state, drift_at))
        return outcome
    finally:
        client.close()


def monitor_outcome(state: dict[str, Any], drift_at: float | None) -> dict[str, Any]:
    delay, false_alarms, rate = drift_outcome(state, drift_at)
    return {"ab": state.get("ab"), "windows": len(state.get("windows", [])), "alerts": len(state.get("alerts", [])),
            "drift_detection_delay_s": delay, "false_alarms": false_alarms, "false_alarm_rate": rate}


def run_demo(system: System, out: Path, config: RunConfig, *, speed: float | None = None, drift: bool = True,
             drift_at_hours: float | None = None, replay_config: ReplayConfig | None = None,
             serve_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """build -> serve -> replay -> monitor -> report under ``out``; returns (and writes) ``summary.json``.

    ``drift``/``drift_at_hours``: for a system whose own demo injects a drift (ads), whether and when.
    """
    own = getattr(system, "demo", None)
    if own is not None and replay_config is None:
        summary: dict[str, Any] = own(out, config, speed, drift=drift, drift_at_hours=drift_at_hours)
        return summary
    from mlsd.reporting import write_design_report

    started = time.perf_counter()
    ws = Workspace(out / "home")
    say = print if config.progress else (lambda *_: None)
    say(f"[1/5] {system.name}: ingest -> features -> train -> register")
    results = system.build(ws, config)
    for stale in ("feature_log", "labels", "monitoring"):  # this run's monitor sees this run's traffic only
        shutil.rmtree(ws.home / stale, ignore_errors=True)
    replay_config = replay_config or ReplayConfig(speed=speed)
    say(f"[2/5] serve: mlsd serve {system.name}")
    with ServerProcess(system.name, ws.home, ["--label-delay-s", str(replay_config.label_delay_s), *serve_args]) \
            as server:
        say("[3/5] replay the held-out traffic through HTTP")
        result = replay_system(system, ws, server.client, replay_config)
        say(f"      {result.requests:,} requests in {result.wall_s:.1f} s, {result.errors} errors, "
            f"p99 {result.latency_ms.get('p99', float('nan')):.2f} ms")
        say("[4/5] monitor: waiting for the service's monitor to take in every label")
        state: dict[str, Any] = {}
        if result.last_at_s is not None:
            state = wait_for_monitor(server.client, result.last_at_s + replay_config.label_delay_s)
    say("[5/5] report")
    report = write_design_report(system, ws, out / "report.html")
    summary = {"system": system.name, "results": _headline(results), "replay": result.to_dict(),
               "serve_p99_ms": result.latency_ms.get("p99"), **monitor_outcome(state, None),
               "online": [w.get("labels") for w in state.get("windows", [])],
               "report": str(report), "seconds": round(time.perf_counter() - started, 1)}
    atomic_write_json(out / "summary.json", summary)
    say(f"report: {report}\nsummary: {out / 'summary.json'}")
    return summary


def _headline(results: dict[str, Any]) -> dict[str, Any]:
    """The build's JSON-ready top-level numbers (its full results stay in ``run.json``)."""
    return {k: v for k, v in results.items() if isinstance(v, int | float | str)}
