"""Connecting to Ray: an existing cluster (``RAY_ADDRESS``) or a local one, started once per process."""

from __future__ import annotations

import os
from types import ModuleType

from mlsd.core.errors import MlsdError

ENGINES = ("embedded", "ray")


def require_ray() -> ModuleType:
    """The ``ray`` module, or a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise MlsdError("the Ray engine needs Ray: pip install 'mlsd[scale]'") from None
    return ray


def ensure_ray(num_cpus: int | None = None, object_store_mb: int | None = None) -> ModuleType:
    """Ray, connected: to ``RAY_ADDRESS`` when set, else to a local cluster started here (no dashboard).

    ``num_cpus`` and ``object_store_mb`` size the local cluster only (``MLSD_RAY_CPUS`` overrides the
    first); a running cluster keeps its own resources.
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
        return ray
    cpus = int(os.environ.get("MLSD_RAY_CPUS", 0)) or num_cpus
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=None if object_store_mb is None else object_store_mb * 1024 * 1024)
    return ray


def check_engine(engine: str) -> str:
    """``engine`` if it is one mlsd knows, else a one-line error listing them."""
    if engine not in ENGINES:
        raise MlsdError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    return engine
