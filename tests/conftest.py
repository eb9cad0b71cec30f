"""Shared fixtures: temporary homes, and Redis (tests marked ``redis`` use the real server)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

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
