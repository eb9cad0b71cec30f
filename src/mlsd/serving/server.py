"""Runs a reference system's service under uvicorn (``mlsd serve SYSTEM``)."""

from __future__ import annotations

import gc
from pathlib import Path

from mlsd.core.errors import MlsdError
from mlsd.serving.app import ASGIApp, ScoringService, create_app
from mlsd.serving.feature_log import FeatureLog


def build_service(system: str, home: Path) -> ScoringService:
    if system == "ads":
        from mlsd.systems.ads.service import AdsService

        return AdsService(home)
    raise MlsdError(f"unknown system {system!r}; servable: ads")


def build_app(system: str, home: Path, max_in_flight: int = 64) -> ASGIApp:
    service = build_service(system, home)
    return create_app(service, FeatureLog(home / "feature_log"), max_in_flight=max_in_flight)


def serve(system: str, *, home: Path, host: str = "127.0.0.1", port: int = 8000, max_in_flight: int = 64) -> None:
    import torch
    import uvicorn

    app = build_app(system, home, max_in_flight)
    # Everything loaded so far (torch, LightGBM, MLflow, the model) lives for the whole process: moving
    # it out of the collector's reach keeps full collections from pausing requests for ~100 ms.
    gc.collect()
    gc.freeze()
    torch.set_num_threads(1)  # one request's tensors are tiny; intra-op threads only add contention
    print(f"mlsd serve {system}: http://{host}:{port} (home {home})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
