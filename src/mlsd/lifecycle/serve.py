"""Runs a reference system's service under uvicorn (``mlsd serve SYSTEM``), in one or more processes.

With ``workers > 1`` uvicorn starts that many processes, each building its own service from the
``MLSD_SERVE_*`` environment (see :func:`worker_app`): each follows the registry alias on its own,
writes its own feature-log file and sheds load on its own scoring queue; ``/metrics`` sums every
process (Prometheus multiprocess mode, ``HOME/prometheus/``). ``engine="ray"`` runs the same app
(:func:`replica_app`) in Ray Serve replicas instead (:mod:`mlsd.scale.serve`).

Writes (labels, events) need the home's token (:mod:`mlsd.serving.auth`), created and printed on
first start; ``token=None`` serves without one, on a loopback address only. uvicorn bounds the open
connections (``max_connections``, beyond them a 503) and closes idle keep-alive ones after 5 s.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import http.client
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mlsd.core.errors import MlsdError
from mlsd.monitoring.online import MonitorConfig, OnlineMonitor
from mlsd.monitoring.runner import LabelLog, MonitorRunner
from mlsd.serving.app import ASGIApp, EdgeLimits, Monitoring, create_app
from mlsd.serving.auth import is_loopback, load_or_create_token, token_path
from mlsd.serving.feature_log import FeatureLog
from mlsd.serving.protocols import ScoringService
from mlsd.serving.threads import limit_compute_threads
from mlsd.simulation.replay import ServiceClient
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


def _tune_process(system: str) -> None:
    # One request's work is small and intra-op threads only add contention; a system whose request runs a
    # transformer forward declares ``compute_threads`` (System attribute) to split it across cores.
    # First, because it imports torch and faiss: ~150,000 objects that must be frozen too.
    limit_compute_threads(int(getattr(load_system(system), "compute_threads", 1)))
    # Everything loaded so far (torch, LightGBM, MLflow, the model) lives for the whole process: moving
    # it out of the collector's reach keeps full collections from pausing requests. Frozen before the
    # thread limits imported torch, those modules stayed in reach: every full collection then took
    # 57-70 ms, the PYMK service's p999 and its shed requests (benchmarks/RESULTS.md).
    gc.collect()
    gc.freeze()


def replica_app(system: str, home: str, config_json: str = "{}", limits_json: str = "{}") -> ASGIApp:
    """The app of one serving process (a uvicorn worker, a Ray Serve replica), tuned for serving."""
    app = build_app(system, Path(home), config=ServeConfig.from_json(config_json),
                    limits=EdgeLimits(**json.loads(limits_json)))
    _tune_process(system)
    return app


def worker_app() -> ASGIApp:
    """The app of one uvicorn worker process, configured by ``MLSD_SERVE_SYSTEM/HOME/LIMITS/CONFIG``."""
    return replica_app(os.environ["MLSD_SERVE_SYSTEM"], os.environ["MLSD_SERVE_HOME"],
                       os.environ.get("MLSD_SERVE_CONFIG", "{}"), os.environ.get("MLSD_SERVE_LIMITS", "{}"))


def metrics_dir(home: Path) -> Path:
    """A fresh directory for the Prometheus values of a service's processes (multiprocess mode)."""
    directory = home / "prometheus"
    shutil.rmtree(directory, ignore_errors=True)  # values of an earlier run are not this run's
    directory.mkdir(parents=True)
    return directory


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


SERVING_FILE = "serving.json"


def serving_record(home: Path) -> dict[str, Any] | None:
    """What the service at ``home`` wrote when it started answering (URL, pid), or None."""
    try:
        record: dict[str, Any] = json.loads((home / SERVING_FILE).read_text())
        return record
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def probe(host: str, port: int, timeout: float = 1.0) -> dict[str, Any] | None:
    """The ``/healthz`` answer of a service at ``host:port``, or None when nothing answers there."""
    client = ServiceClient("127.0.0.1" if host in ("0.0.0.0", "::") else host, port, timeout=timeout)
    try:
        _, body = client.request("GET", "/healthz")
        return body if isinstance(body, dict) else None
    except (OSError, http.client.HTTPException, ValueError):  # refused, reset, timed out, not HTTP
        return None
    finally:
        client.close()


class _Announcer(threading.Thread):
    """Prints the URL once the service answers (not when it starts loading) and records it in the home."""

    def __init__(self, system: str, home: Path, host: str, port: int, workers: int) -> None:
        super().__init__(name="announce", daemon=True)
        self.system, self.home, self.host, self.port, self.workers = system, home, host, port, workers
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            health = probe(self.host, self.port)
            if health is None or health.get("system") is None:
                continue
            url = f"http://{self.host}:{self.port}"
            from mlsd.core.atomic import atomic_write_json

            atomic_write_json(self.home / SERVING_FILE, {"url": url, "host": self.host, "port": self.port,
                                                         "pid": os.getpid(), "workers": self.workers,
                                                         "started_at": time.time()})
            print(f"mlsd serve {self.system}: answering on {url} (model v{health.get('model_version')}, "
                  f"home {self.home}, {self.workers} worker process(es))", flush=True)
            return

    def close(self) -> None:
        self.stop.set()
        record = serving_record(self.home)
        if record is not None and record.get("pid") == os.getpid():
            (self.home / SERVING_FILE).unlink(missing_ok=True)


def serve(system: str, *, home: Path, host: str = "127.0.0.1", port: int = 8000, max_in_flight: int = 64,
          workers: int = 1, config: ServeConfig | None = None, limits: EdgeLimits | None = None,
          max_connections: int = 2048, engine: str = "embedded") -> None:
    """Serve ``system`` under uvicorn (``workers`` processes) or, with ``engine="ray"``, as a Ray Serve
    deployment of ``workers`` replicas; ``limits`` default to the home's token and the usual bounds.

    The URL is printed (and ``HOME/serving.json`` written, for ``mlsd status``) once ``/healthz``
    answers, so a script may start using the service the moment it reads that line.
    """
    import uvicorn

    if probe(host, port) is not None:
        raise MlsdError(f"{host}:{port} already answers (another service is running there): stop it or pick --port")
    limits = limits or edge_limits(home, host, max_in_flight=max_in_flight)
    if engine == "ray":
        _serve_on_ray(system, home, host, port, workers, config, limits)
        return
    announcer = _Announcer(system, home, host, port, workers)
    # uvicorn re-raises SIGTERM once it has shut down; as SystemExit it unwinds the finally below
    # (and removes serving.json) where the default action would kill the process on the spot.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        announcer.start()
        _run_uvicorn(system, home, host, port, workers, config, limits, max_connections, uvicorn)
    finally:
        announcer.close()


def _run_uvicorn(system: str, home: Path, host: str, port: int, workers: int, config: ServeConfig | None,
                 limits: EdgeLimits, max_connections: int, uvicorn: Any) -> None:
    options: dict[str, Any] = {"host": host, "port": port, "log_level": "warning", "access_log": False,
               "lifespan": "on",
               "limit_concurrency": max_connections, "timeout_keep_alive": 5}
    if workers > 1:
        # set before the workers start (and import prometheus_client): their metrics are summed on /metrics
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir(home))
        os.environ.update({"MLSD_SERVE_SYSTEM": system, "MLSD_SERVE_HOME": str(home.resolve()),
                           "MLSD_SERVE_LIMITS": json.dumps(dataclasses.asdict(limits)),
                           "MLSD_SERVE_CONFIG": (config or ServeConfig()).to_json()})
        uvicorn.run("mlsd.lifecycle.serve:worker_app", factory=True, workers=workers, **options)
        return
    app = build_app(system, home, config=config, limits=limits)
    _tune_process(system)
    uvicorn.run(app, **options)


def _serve_on_ray(system: str, home: Path, host: str, port: int, replicas: int, config: ServeConfig | None,
                  limits: EdgeLimits) -> None:
    """The same app in ``replicas`` Ray Serve replicas behind Ray's HTTP proxy, until SIGTERM or Ctrl-C."""
    from mlsd.scale.serve import serve_replicated, stop_serving

    builder = functools.partial(replica_app, system, str(home.resolve()), (config or ServeConfig()).to_json(),
                                json.dumps(dataclasses.asdict(limits)))
    announcer = _Announcer(system, home, host, port, replicas)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    try:
        serve_replicated(builder, name=system, replicas=replicas, host=host, port=port,
                         max_ongoing_requests=limits.max_in_flight, metrics_dir=metrics_dir(home))
        announcer.start()
        stop.wait()
    finally:
        announcer.close()
        stop_serving()
