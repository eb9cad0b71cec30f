"""The scale-out registry and stores as users start them: MLflow on PostgreSQL, the online store on Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from mlsd.features import RedisOnlineStore, SqliteOnlineStore, open_online_store

POSTGRES = os.environ.get("MLSD_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture
def postgres_uri() -> Iterator[str]:
    """A database of its own on the local PostgreSQL, dropped afterwards; skips only where CI is not running."""
    psycopg = pytest.importorskip("psycopg")
    name = f"mlsd_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(f"{POSTGRES}/postgres", connect_timeout=3, autocommit=True)
    except psycopg.OperationalError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL at {POSTGRES}")
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def test_online_store_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.delenv("MLSD_ONLINE_STORE", raising=False)
    assert isinstance(open_online_store(tmp_path / "online.db"), SqliteOnlineStore)
    monkeypatch.setenv("MLSD_ONLINE_STORE", redis_url)
    a, b = open_online_store(tmp_path / "a" / "online.db"), open_online_store(tmp_path / "b" / "online.db")
    assert isinstance(a, RedisOnlineStore)
    assert isinstance(b, RedisOnlineStore)
    assert a.namespace != b.namespace  # two homes never meet in one Redis
    monkeypatch.setenv("MLSD_ONLINE_STORE", "memcached://x")
    with pytest.raises(Exception, match="MLSD_ONLINE_STORE"):
        open_online_store(tmp_path / "online.db")


@pytest.mark.redis
@pytest.mark.slow
def test_ads_builds_and_serves_on_postgres_and_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     postgres_uri: str, redis_url: str) -> None:
    """The whole ads system (build, register, promote, serve) with MLflow on PostgreSQL and Redis online."""
    import psycopg

    from mlsd.datasets.marketplace import AdMarketplace, click_log
    from mlsd.lifecycle.serve import build_app
    from mlsd.registry import CHAMPION, ModelRegistry
    from mlsd.systems.ads.run import AdsRun, model_name
    from tests.test_scale import _requests

    monkeypatch.setenv("MLFLOW_TRACKING_URI", postgres_uri)
    monkeypatch.setenv("MLSD_ONLINE_STORE", redis_url)
    home = tmp_path / "ads"
    store = open_online_store(home / "online.db")
    assert isinstance(store, RedisOnlineStore)
    try:
        AdsRun(home, clicks=click_log(AdMarketplace(0), 40_000, days=4.0), dataset="marketplace", models=("logreg",),
               progress=False, flat_datasets=False).run()
        assert not (home / "mlflow.db").exists()  # nothing embedded
        assert not (home / "online.db").exists()
        with psycopg.connect(postgres_uri) as con:
            versions = con.execute("SELECT name, version FROM model_versions").fetchall()
        assert ("ads-marketplace", 1) in versions  # the registry lives in PostgreSQL
        champion = ModelRegistry(home).version_for(model_name("marketplace"), CHAMPION)
        assert redis.Redis.from_url(redis_url).keys(f"{store.namespace}:*")  # the online store lives in Redis
        with TestClient(build_app("ads", home)) as client:  # type: ignore[arg-type]
            assert client.get("/healthz").json()["model_version"] == champion
            answer = client.post("/v1/ads/score", json=_requests(home, 1)[0])
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["ranked"]) == 5
    finally:
        client_ = redis.Redis.from_url(redis_url)
        for key in client_.scan_iter(f"{store.namespace}:*"):
            client_.delete(key)
