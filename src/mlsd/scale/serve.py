"""Replicated serving on Ray Serve: the service's own ASGI app, in N replicas behind Ray's HTTP proxy.

Each replica builds the app with the builder it is given (``serve.ingress`` of a builder function,
evaluated in the replica), so validation, online features, the feature log (one file per replica
process), hot swap, load shedding and the monitor are the embedded server's. Ray's proxy routes
each request to a replica with room: ``max_ongoing_requests`` per replica matches the app's own
admission limit, and at most that many more wait at the proxy before it answers 503, so overload
is still shed rather than queued. Prometheus values of every replica are summed on ``/metrics``
(multiprocess mode, ``metrics_dir``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlsd.core.errors import MlsdError
from mlsd.scale.cluster import ensure_ray


def serve_replicated(builder: Callable[[], Any], *, name: str, replicas: int, host: str = "127.0.0.1",
                     port: int = 8000, max_ongoing_requests: int = 64, replica_cpus: float = 1.0,
                     metrics_dir: Path | None = None) -> None:
    """Deploy ``builder``'s ASGI app as ``replicas`` replicas on ``host:port``; returns once all are up."""
    if replicas < 1:
        raise MlsdError(f"replicas must be at least 1, got {replicas}")
    ensure_ray()
    from ray import serve
    from ray.serve.config import HTTPOptions

    env = {}
    if metrics_dir is not None:
        metrics_dir.mkdir(parents=True, exist_ok=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    serve.start(http_options=HTTPOptions(host=host, port=port), logging_config={"log_level": "WARNING"})
    def build_app() -> Any:  # a plain function: Serve calls it in each replica (a partial it would take for the app)
        return builder()

    deployment: Any = serve.deployment(
        serve.ingress(build_app)(),
        name=name, num_replicas=replicas, max_ongoing_requests=max_ongoing_requests,
        max_queued_requests=max_ongoing_requests,
        ray_actor_options={"num_cpus": replica_cpus, "runtime_env": {"env_vars": env}},
        health_check_period_s=2, graceful_shutdown_timeout_s=5,
    )
    try:
        serve.run(deployment.bind(), name=name, route_prefix="/")  # returns once every replica is up
    except RuntimeError as error:  # a replica failed to build the app (its error is in the message)
        raise MlsdError(f"Ray Serve could not start {name}: {str(error).splitlines()[0]} (the replicas' "
                        "errors are in the Ray session's logs/serve/ directory)") from None


def stop_serving() -> None:
    """Take every Ray Serve application down (the proxy included)."""
    import ray
    from ray import serve

    if ray.is_initialized():
        serve.shutdown()  # type: ignore[no-untyped-call]
