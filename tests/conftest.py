"""Shared fixtures: temporary homes, and Redis (tests marked ``redis`` use the real server)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

REDIS_URL = os.environ.get("MLSD_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(autouse=True)
def _tracking_uri_unchanged() -> Iterator[None]:
    """No test may leave ``MLFLOW_TRACKING_URI`` changed: ``mlflow.set_tracking_uri`` sets it for the whole
    process, and every later registry and ``mlsd serve`` child would silently use that database."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    assert os.environ.get("MLFLOW_TRACKING_URI") == before, "the test changed MLFLOW_TRACKING_URI for the session"


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


class QuickBuilds:
    """Each system's quick build (``RunConfig(small=True)``) on the real data, built once per test session;
    tests get fresh copies, free to change (the models they register stay in the session's build)."""

    def __init__(self, root: pytest.TempPathFactory) -> None:
        self.root = root
        self.built: dict[str, tuple[Path, dict[str, Any]]] = {}

    def copy(self, name: str) -> tuple[Path, dict[str, Any]]:
        """A fresh copy of ``name``'s build and the build's results."""
        from mlsd.system import RunConfig, Workspace, load_system

        if name not in self.built:
            home = self.root.mktemp(f"built-{name}") / "home"
            results = load_system(name).build(Workspace(home), RunConfig(data=os.environ.get("MLSD_DATA_DIR"),
                                                                         progress=False, small=True))
            self.built[name] = home, dict(results)
        home, results = self.built[name]
        copy = self.root.mktemp(f"copy-{name}") / "home"
        shutil.copytree(home, copy)
        return copy, results


@pytest.fixture(scope="session")
def quick_builds(tmp_path_factory: pytest.TempPathFactory) -> QuickBuilds:
    """The session's :class:`QuickBuilds` (``quick_builds.copy(name)``: a home and its build's results)."""
    return QuickBuilds(tmp_path_factory)


@pytest.fixture(scope="session")
def small_home(quick_builds: QuickBuilds) -> Callable[[str], Path]:
    """``small_home(system)``: a fresh copy of the session's quick build of ``system``."""
    return lambda name: quick_builds.copy(name)[0]
