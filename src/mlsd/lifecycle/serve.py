"""Runs a reference system's service under uvicorn (``mlsd serve SYSTEM``), in one or more processes.

With ``workers > 1`` uvicorn starts that many processes, each building its own service from the
``MLSD_SERVE_*`` environment (see :func:`worker_app`): each follows the registry alias on its own,
writes its own feature-log file and sheds load on its own in-flight count. Prometheus counters are
per process in that mode.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

from mlsd.monitoring.online import MonitorConfig, OnlineMonitor
from mlsd.monitoring.runner import LabelLog, MonitorRunner
from mlsd.serving.app import ASGIApp, Monitoring, ScoringService, create_app
from mlsd.serving.feature_log import FeatureLog
from mlsd.serving.threads import limit_compute_threads
from mlsd.system import ServeConfig, Workspace, load_system


def build_service(system: str, home: Path, config: ServeConfig | None = None) -> ScoringService:
    """The registered system's scoring service over the workspace at ``home``."""
    return load_system(system).service(Workspace(home), config or ServeConfig())


def build_monitoring(service: ScoringService, home: Path) -> Monitoring | None:
    """Label intake and the online monitor, for a service that registers a reference profile."""
    profile = getattr(service, "reference_profile", None)
    if profile is None:
        return None
    ws = Workspace(home)
    config = getattr(service, "monitor_config", None) or MonitorConfig()
    runner = MonitorRunner(OnlineMonitor(profile(), config), ws.feature_log, ws.labels, ws.monitoring)
    return Monitoring(LabelLog(ws.labels), runner, ws.monitoring)


def build_app(system: str, home: Path, max_in_flight: int = 64, config: ServeConfig | None = None) -> ASGIApp:
    service = build_service(system, home, config)
    return create_app(service, FeatureLog(Workspace(home).feature_log), max_in_flight=max_in_flight,
                      monitoring=build_monitoring(service, home))


def _tune_process() -> None:
    # Everything loaded so far (torch, LightGBM, MLflow, the model) lives for the whole process: moving
    # it out of the collector's reach keeps full collections from pausing requests for ~100 ms.
    gc.collect()
    gc.freeze()
    limit_compute_threads(1)  # one request's work is small; intra-op threads only add contention


def worker_app() -> ASGIApp:
    """The app of one worker process, configured by ``MLSD_SERVE_SYSTEM/HOME/MAX_IN_FLIGHT/CONFIG``."""
    app = build_app(os.environ["MLSD_SERVE_SYSTEM"], Path(os.environ["MLSD_SERVE_HOME"]),
                    int(os.environ.get("MLSD_SERVE_MAX_IN_FLIGHT", "64")),
                    ServeConfig.from_json(os.environ.get("MLSD_SERVE_CONFIG", "{}")))
    _tune_process()
    return app


def serve(system: str, *, home: Path, host: str = "127.0.0.1", port: int = 8000, max_in_flight: int = 64,
          workers: int = 1, config: ServeConfig | None = None) -> None:
    import uvicorn

    print(f"mlsd serve {system}: http://{host}:{port} (home {home}, {workers} worker process(es))", flush=True)
    if workers > 1:
        os.environ.update({"MLSD_SERVE_SYSTEM": system, "MLSD_SERVE_HOME": str(home.resolve()),
                           "MLSD_SERVE_MAX_IN_FLIGHT": str(max_in_flight),
                           "MLSD_SERVE_CONFIG": (config or ServeConfig()).to_json()})
        uvicorn.run("mlsd.lifecycle.serve:worker_app", factory=True, workers=workers, host=host, port=port,
                    log_level="warning", access_log=False, lifespan="on")
        return
    app = build_app(system, home, max_in_flight, config)
    _tune_process()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
