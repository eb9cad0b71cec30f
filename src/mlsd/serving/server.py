"""Runs a reference system's service under uvicorn (``mlsd serve SYSTEM``), in one or more processes.

With ``workers > 1`` uvicorn starts that many processes, each building its own service from the
``MLSD_SERVE_*`` environment (see :func:`worker_app`): each follows the registry alias on its own,
writes its own feature-log file and sheds load on its own in-flight count. Prometheus counters are
per process in that mode.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlsd.core.errors import MlsdError
from mlsd.monitoring.drift import DriftThresholds
from mlsd.monitoring.online import OnlineMonitor
from mlsd.monitoring.runner import LabelLog, MonitorRunner
from mlsd.serving.app import ASGIApp, Monitoring, ScoringService, create_app
from mlsd.serving.feature_log import FeatureLog
from mlsd.serving.threads import limit_compute_threads


def build_service(system: str, home: Path, options: Mapping[str, Any] | None = None) -> ScoringService:
    """The system's scoring service; ``options`` are its keyword arguments (A/B share, monitor windows)."""
    if system == "ads":
        from mlsd.systems.ads.service import AdsService

        settings = dict(options or {})
        limits = {k: settings.pop(k) for k in ("psi", "js", "p_value") if k in settings}
        return AdsService(home, thresholds=DriftThresholds(**limits), **settings)
    if system == "recs":
        from mlsd.systems.recs.service import RecsService

        return RecsService(home)
    raise MlsdError(f"unknown system {system!r}; servable: ads, recs")


def build_monitoring(service: ScoringService, home: Path) -> Monitoring | None:
    """Label intake and the online monitor, for a service that registers a reference profile."""
    profile = getattr(service, "reference_profile", None)
    if profile is None:
        return None
    out_dir = home / "monitoring"
    runner = MonitorRunner(OnlineMonitor(profile(), service.monitor_config),  # type: ignore[attr-defined]
                           home / "feature_log", home / "labels", out_dir)
    return Monitoring(LabelLog(home / "labels"), runner, out_dir)


def build_app(system: str, home: Path, max_in_flight: int = 64, options: Mapping[str, Any] | None = None) -> ASGIApp:
    service = build_service(system, home, options)
    return create_app(service, FeatureLog(home / "feature_log"), max_in_flight=max_in_flight,
                      monitoring=build_monitoring(service, home))


def _tune_process() -> None:
    # Everything loaded so far (torch, LightGBM, MLflow, the model) lives for the whole process: moving
    # it out of the collector's reach keeps full collections from pausing requests for ~100 ms.
    gc.collect()
    gc.freeze()
    limit_compute_threads(1)  # one request's work is small; intra-op threads only add contention


def worker_app() -> ASGIApp:
    """The app of one worker process, configured by ``MLSD_SERVE_SYSTEM/HOME/MAX_IN_FLIGHT/OPTIONS``."""
    app = build_app(os.environ["MLSD_SERVE_SYSTEM"], Path(os.environ["MLSD_SERVE_HOME"]),
                    int(os.environ.get("MLSD_SERVE_MAX_IN_FLIGHT", "64")),
                    json.loads(os.environ.get("MLSD_SERVE_OPTIONS", "{}")))
    _tune_process()
    return app


def serve(system: str, *, home: Path, host: str = "127.0.0.1", port: int = 8000, max_in_flight: int = 64,
          workers: int = 1, options: Mapping[str, Any] | None = None) -> None:
    import uvicorn

    print(f"mlsd serve {system}: http://{host}:{port} (home {home}, {workers} worker process(es))", flush=True)
    if workers > 1:
        os.environ.update({"MLSD_SERVE_SYSTEM": system, "MLSD_SERVE_HOME": str(home.resolve()),
                           "MLSD_SERVE_MAX_IN_FLIGHT": str(max_in_flight),
                           "MLSD_SERVE_OPTIONS": json.dumps(dict(options or {}))})
        uvicorn.run("mlsd.serving.server:worker_app", factory=True, workers=workers, host=host, port=port,
                    log_level="warning", access_log=False, lifespan="on")
        return
    app = build_app(system, home, max_in_flight, options)
    _tune_process()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
