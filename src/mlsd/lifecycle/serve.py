"""Runs a reference system's service under uvicorn (``mlsd serve SYSTEM``), in one or more processes.

With ``workers > 1`` uvicorn starts that many processes, each building its own service from the
``MLSD_SERVE_*`` environment (see :func:`worker_app`): each follows the registry alias on its own,
writes its own feature-log file and sheds load on its own scoring queue. Prometheus counters are
per process in that mode.

Writes (labels, events) need the home's token (:mod:`mlsd.serving.auth`), created and printed on
first start; ``token=None`` serves without one, on a loopback address only. uvicorn bounds the open
connections (``max_connections``, beyond them a 503) and closes idle keep-alive ones after 5 s.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
from pathlib import Path
from typing import Any

from mlsd.core.errors import MlsdError
from mlsd.monitoring.online import MonitorConfig, OnlineMonitor
from mlsd.monitoring.runner import LabelLog, MonitorRunner
from mlsd.serving.app import ASGIApp, EdgeLimits, Monitoring, ScoringService, create_app
from mlsd.serving.auth import is_loopback, load_or_create_token, token_path
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


def build_app(system: str, home: Path, max_in_flight: int = 64, config: ServeConfig | None = None,
              limits: EdgeLimits | None = None) -> ASGIApp:
    service = build_service(system, home, config)
    return create_app(service, FeatureLog(Workspace(home).feature_log),
                      limits=limits or EdgeLimits(max_in_flight=max_in_flight),
                      monitoring=build_monitoring(service, home))


def _tune_process() -> None:
    # Everything loaded so far (torch, LightGBM, MLflow, the model) lives for the whole process: moving
    # it out of the collector's reach keeps full collections from pausing requests for ~100 ms.
    gc.collect()
    gc.freeze()
    limit_compute_threads(1)  # one request's work is small; intra-op threads only add contention


def worker_app() -> ASGIApp:
    """The app of one worker process, configured by ``MLSD_SERVE_SYSTEM/HOME/LIMITS/CONFIG``."""
    limits = EdgeLimits(**json.loads(os.environ.get("MLSD_SERVE_LIMITS", "{}")))
    app = build_app(os.environ["MLSD_SERVE_SYSTEM"], Path(os.environ["MLSD_SERVE_HOME"]),
                    config=ServeConfig.from_json(os.environ.get("MLSD_SERVE_CONFIG", "{}")), limits=limits)
    _tune_process()
    return app


def edge_limits(home: Path, host: str, *, token: bool = True, token_all: bool = False,
                **fields: float) -> EdgeLimits:
    """The edge of a service at ``home``: with ``token``, the home's token (created and printed once)."""
    if not token:
        if not is_loopback(host):
            raise MlsdError(f"refusing to serve on {host} without a token: writes would be open to the network "
                            "(drop --no-token, or bind to 127.0.0.1)")
        if token_all:
            raise MlsdError("--token-all needs a token (drop --no-token)")
        return EdgeLimits(**fields)  # type: ignore[arg-type]
    secret, created = load_or_create_token(home)
    if created:
        print(f"mlsd serve: writes need the token {secret} (Authorization: Bearer ...; "
              f"kept in {token_path(home)})", flush=True)
    return EdgeLimits(token=secret, token_all=token_all, **fields)  # type: ignore[arg-type]


def serve(system: str, *, home: Path, host: str = "127.0.0.1", port: int = 8000, max_in_flight: int = 64,
          workers: int = 1, config: ServeConfig | None = None, limits: EdgeLimits | None = None,
          max_connections: int = 2048) -> None:
    """Serve ``system`` under uvicorn; ``limits`` default to the home's token and the usual bounds."""
    import uvicorn

    limits = limits or edge_limits(home, host, max_in_flight=max_in_flight)
    print(f"mlsd serve {system}: http://{host}:{port} (home {home}, {workers} worker process(es))", flush=True)
    options: dict[str, Any] = {"host": host, "port": port, "log_level": "warning", "access_log": False,
               "lifespan": "on",
               "limit_concurrency": max_connections, "timeout_keep_alive": 5}
    if workers > 1:
        os.environ.update({"MLSD_SERVE_SYSTEM": system, "MLSD_SERVE_HOME": str(home.resolve()),
                           "MLSD_SERVE_LIMITS": json.dumps(dataclasses.asdict(limits)),
                           "MLSD_SERVE_CONFIG": (config or ServeConfig()).to_json()})
        uvicorn.run("mlsd.lifecycle.serve:worker_app", factory=True, workers=workers, **options)
        return
    app = build_app(system, home, config=config, limits=limits)
    _tune_process()
    uvicorn.run(app, **options)
