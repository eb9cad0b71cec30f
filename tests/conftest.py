"""Shared fixtures: temporary homes, and Redis (tests marked ``redis`` use the real server)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

REDIS_URL = os.environ.get("MLSD_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The Redis test database, flushed of this test's keys afterwards; skips only where CI is not running."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis at {REDIS_URL}")
    yield REDIS_URL
    client.close()


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster for the whole test session (2 CPUs, a small object store, no dashboard)."""
    from mlsd.scale.cluster import ensure_ray

    ray = ensure_ray(num_cpus=2, object_store_mb=256)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def small_home(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``small_home(system)``: a fresh copy of a quick build (``RunConfig(small=True)``) on the real data,
    built once per session. A copy may be changed freely; its models stay in the session's build."""
    from mlsd.system import RunConfig, Workspace, load_system

    built: dict[str, Path] = {}

    def home(name: str) -> Path:
        if name not in built:
            built[name] = tmp_path_factory.mktemp(f"built-{name}") / "home"
            load_system(name).build(Workspace(built[name]), RunConfig(data=os.environ.get("MLSD_DATA_DIR"),
                                                                      progress=False, small=True))
        copy = tmp_path_factory.mktemp(f"copy-{name}") / "home"
        shutil.copytree(built[name], copy)
        return copy

    return home
