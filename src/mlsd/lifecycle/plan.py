"""``mlsd plan SYSTEM --qps Q --entities E``: capacity beyond one machine, from measurements of this one.

Measured here, on the trained home:
- **CPU per request**: the system's own replay traffic (its ``traffic`` source, the first ``requests``
  requests) scored in-process through the service's ASGI app (validation, online features, model,
  feature log), CPU seconds of the process over the requests; the HTTP server's parsing is not in it;
- **feature-log bytes per request**: the JSON lines those requests wrote (to a scratch log);
- **online store bytes per entity row**, per feature view: the rows in the home's online store, and,
  where Redis answers (``MLSD_REDIS_URL`` or the local default), ``MEMORY USAGE`` of a sample of those
  rows copied to Redis under a scratch namespace (deleted after); else key + value bytes plus 64 bytes;
- **training rows per second**: recorded by the champion's training run (``train_rows_per_s``).

Then, stated as assumptions in the output: cores = Q x CPU per request / target utilisation (60%);
replicas = cores / the system's ``compute_threads``; Redis memory = E entity rows per view x bytes per
row x 1.3 (fragmentation and headroom); log storage per day = Q x 86,400 x bytes per record
(uncompressed JSON lines); retraining time for a day of logged requests at the measured rows/s.
"""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from mlsd.core.errors import MlsdError
from mlsd.lifecycle.manage import require_trained, served_model
from mlsd.system import ReplayConfig, ServeConfig, System, Workspace

UTILIZATION = 0.6
REDIS_HEADROOM = 1.3
REDIS_KEY_OVERHEAD = 64  # bytes per key where no Redis answers (dict entry, object header, SDS headers)


async def _post(app: Any, path: str, body: bytes) -> int:
    """One request through an ASGI app without a server or a client library: the app's own cost only."""
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "", "scheme": "http",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    await app(scope, receive, send)
    return status


def measure_requests(system: System, ws: Workspace, requests: int = 300) -> dict[str, float]:
    """CPU ms and feature-log bytes per request over the system's first ``requests`` replay requests."""
    from mlsd.serving.app import EdgeLimits, create_app
    from mlsd.serving.feature_log import FeatureLog

    traffic = system.traffic(ws, ReplayConfig(limit=requests))
    try:
        bodies = [orjson.dumps(item.body) for _, item in zip(range(requests), traffic, strict=False)]
    finally:
        traffic.close()
    if not bodies:
        raise MlsdError(f"{system.name}'s replay traffic has no requests to measure")
    service = system.service(ws, ServeConfig())
    with tempfile.TemporaryDirectory(prefix="mlsd-plan-") as scratch:
        log = FeatureLog(scratch)
        app = create_app(service, log, limits=EdgeLimits(max_in_flight=len(bodies) + 1))
        try:
            loop = asyncio.new_event_loop()
            for body in bodies[: min(20, len(bodies))]:  # warm-up: caches, lazy imports
                loop.run_until_complete(_post(app, service.route, body))
            cpu, wall = time.process_time(), time.perf_counter()
            statuses = [loop.run_until_complete(_post(app, service.route, body)) for body in bodies]
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            loop.close()
        finally:
            log.close()
            service.close()
        ok = sum(s == 200 for s in statuses)
        if ok == 0:
            raise MlsdError(f"none of {len(bodies)} replayed requests was answered 200 (statuses {set(statuses)})")
        log_bytes = sum(p.stat().st_size for p in Path(scratch).glob("features-*.jsonl"))
    warm = min(20, len(bodies))
    return {"requests": len(bodies), "answered_200": ok, "cpu_ms_per_request": 1e3 * cpu / len(bodies),
            "wall_ms_per_request": 1e3 * wall / len(bodies),
            "log_bytes_per_request": log_bytes / (len(bodies) + warm)}


def online_rows(ws: Workspace) -> dict[str, dict[str, float]]:
    """Per feature view in the home's SQLite online store: rows and mean key + value bytes."""
    if not ws.online_db.exists():
        return {}
    con = sqlite3.connect(f"file:{ws.online_db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'fv_%'")]
        out = {}
        for table in tables:
            query = f"SELECT count(*), coalesce(avg(length(k) + length(v)), 0) FROM {table}"
            rows, size = con.execute(query).fetchone()
            if rows:
                out[table.removeprefix("fv_")] = {"rows": float(rows), "payload_bytes": float(size)}
        return out
    finally:
        con.close()


def redis_bytes_per_row(ws: Workspace, views: dict[str, dict[str, float]], sample: int = 2000) -> str:
    """Add ``redis_bytes`` per view, measured on a real Redis where one answers; returns how it was got."""
    import redis

    url = os.environ.get("MLSD_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        client.ping()
    except redis.RedisError:
        for stats in views.values():
            stats["redis_bytes"] = stats["payload_bytes"] + REDIS_KEY_OVERHEAD
        return f"estimated (no Redis at {url}): key + value + {REDIS_KEY_OVERHEAD} bytes"
    prefix = f"mlsd-plan:{uuid.uuid4().hex[:8]}:".encode()
    con = sqlite3.connect(f"file:{ws.online_db}?mode=ro", uri=True)
    try:
        for view, stats in views.items():
            rows = con.execute(f"SELECT k, v FROM fv_{view} LIMIT {sample}").fetchall()
            keys = [prefix + view.encode() + b":" + k for k, _ in rows]
            client.mset({key: v for key, (_, v) in zip(keys, rows, strict=True)})
            usage = [client.memory_usage(key) or 0 for key in keys]
            client.delete(*keys)
            stats["redis_bytes"] = float(sum(usage)) / max(1, len(usage))
    finally:
        con.close()
        client.close()
    return f"measured: MEMORY USAGE of up to {sample} rows per view copied to {url}"


def train_rows_per_s(system: System, ws: Workspace) -> float | None:
    """What the champion's training run recorded, if the system records it."""
    from mlsd.registry import CHAMPION

    registry = ws.registry
    name = served_model(system, ws)
    try:
        version = registry.describe(name, registry.version_for(name, CHAMPION))
    except MlsdError:
        return None
    value = registry.client.get_run(version.run_id).data.params.get("train_rows_per_s")
    return float(value) if value else None


def plan(system: System, ws: Workspace, qps: float, entities: int, requests: int = 300) -> dict[str, Any]:
    """Measurements of this machine, and what ``qps`` requests/s over ``entities`` entity rows need."""
    if qps <= 0 or entities <= 0:
        raise MlsdError("--qps and --entities must be positive")
    require_trained(ws, system)
    measured = measure_requests(system, ws, requests)
    views = online_rows(ws)
    redis_how = redis_bytes_per_row(ws, views) if views else "no online store rows in this home"
    rows_per_s = train_rows_per_s(system, ws)
    threads = int(getattr(system, "compute_threads", 1))
    cores = qps * measured["cpu_ms_per_request"] / 1e3 / UTILIZATION
    bytes_per_entity = sum(v["redis_bytes"] for v in views.values())
    records_per_day = qps * 86_400
    need = {
        "cores": math.ceil(cores), "replicas": math.ceil(cores / threads),
        "redis_gb": round(entities * bytes_per_entity * REDIS_HEADROOM / 1e9, 3),
        "feature_log_gb_per_day": round(records_per_day * measured["log_bytes_per_request"] / 1e9, 2),
        "retrain_hours_per_day_of_logs": (round(records_per_day / rows_per_s / 3600, 2) if rows_per_s else None),
    }
    return {"system": system.name, "qps": qps, "entities": entities,
            "measured": {**{k: round(v, 3) for k, v in measured.items()},
                         "online_views": {k: {m: round(x, 1) for m, x in v.items()} for k, v in views.items()},
                         "redis_bytes_per_entity_row": round(bytes_per_entity, 1), "redis": redis_how,
                         "train_rows_per_s": rows_per_s},
            "needs": need,
            "assumptions": [f"target CPU utilisation {UTILIZATION:.0%}; the HTTP server's parsing not measured",
                            f"{threads} intra-op thread(s) per replica (the system's compute_threads)",
                            f"every view holds {entities:,} entity rows; Redis x{REDIS_HEADROOM} for "
                            "fragmentation and headroom",
                            "one feature-log record per request, uncompressed JSON lines",
                            "retraining: a day of logged requests as training rows at the measured rows/s"]}


def format_plan(result: dict[str, Any]) -> str:
    m, n = result["measured"], result["needs"]
    lines = [f"{result['system']}: {result['qps']:,.0f} requests/s over {result['entities']:,} entities",
             f"  measured here: {m['cpu_ms_per_request']:.2f} ms CPU per request ({m['requests']} replayed, "
             f"{m['answered_200']} answered 200), {m['log_bytes_per_request']:,.0f} feature-log bytes per request, "
             f"{m['redis_bytes_per_entity_row']:,.0f} Redis bytes per entity across "
             f"{len(m['online_views'])} views ({m['redis']})",
             f"  training: {m['train_rows_per_s']:,.0f} rows/s" if m["train_rows_per_s"] else
             "  training: rows/s not recorded by this system's run",
             f"  needs: {n['cores']} cores in {n['replicas']} replicas, Redis {n['redis_gb']:.2f} GB, "
             f"feature log {n['feature_log_gb_per_day']:.1f} GB/day"
             + (f", {n['retrain_hours_per_day_of_logs']:.1f} h to retrain on a day of logs (one worker)"
                if n["retrain_hours_per_day_of_logs"] is not None else ""),
             "  assuming: " + "; ".join(result["assumptions"])]
    return "\n".join(lines)
