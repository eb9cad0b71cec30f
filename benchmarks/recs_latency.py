"""Recommendation service latency at 200 req/s (k = 10 from 500 candidates), against a bare-framework baseline.

Uses a trained recs home (``--home``, else ``mlsd run recs`` on MovieLens-100K from ``--data`` /
``MLSD_DATA_DIR`` into a temporary directory), starts ``mlsd serve recs`` (one uvicorn process) and the
bare Starlette baseline, and drives each open-loop from a separate load process on loopback; latency is
measured from each request's scheduled send time, so queueing counts. Known and unknown (cold-start)
users are mixed 9:1. Prints JSON with ``p99_ms_200rps``, ``errors`` and the server's CPU share under the load
(``server_cpu_share``: CPU seconds of the server processes per second, 1.0 = one core saturated).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import emit
from serve_latency import free_port, load, wait_ready

HERE = Path(__file__).resolve().parent


def bodies(home: Path, count: int, seed: int = 0) -> list[str]:
    users = np.load(home / "serving" / "seen.npz")["user_ids"]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        if rng.random() < 0.1:  # a user the service has never seen: the cold-start path
            out.append(json.dumps({"user_id": int(10**6 + rng.integers(10**6)), "k": 10,
                                   "context": {"age": int(rng.integers(15, 70)), "gender": "F"}}))
        else:
            out.append(json.dumps({"user_id": int(rng.choice(users)), "k": 10}))
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its live children, from /proc (Linux)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += cpu_seconds(int(child))
    except (FileNotFoundError, ProcessLookupError):  # exited meanwhile: its time is no longer ours to count
        pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=os.environ.get("MLSD_DATA_DIR"))
    parser.add_argument("--home", help="a `mlsd run recs` home (default: train one in a temporary directory)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load at the target rate")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of the service")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlsd-recs-bench-"))
    home = Path(args.home) if args.home else work / "recs"
    if not args.home:
        subprocess.run([sys.executable, "-m", "mlsd.cli", "run", "recs", "--home", str(home), "--quiet",
                        *(["--data", args.data] if args.data else [])], check=True)
    requests = work / "bodies.jsonl"
    requests.write_text("\n".join(bodies(home, 4000)))
    result: dict[str, Any] = {"rate": args.rate, "duration_s": args.duration, "k": 10, "candidates": 500,
                              "server": f"uvicorn+starlette, {args.workers} process(es)"}
    for prefix in ("", "baseline_"):
        port = free_port()
        service = [sys.executable, "-m", "mlsd.cli", "serve", "recs", "--home", str(home), "--max-in-flight", "256",
                   "--port", str(port), "--workers", str(args.workers)]
        command = service if prefix == "" else [sys.executable, str(HERE / "_baseline_app.py"), str(port), "1"]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, "/v1/recs/recommend" if prefix == "" else "/v1/ads/score")
            route = "/v1/recs/recommend" if prefix == "" else "/v1/ads/score"
            load("closed", port, requests, 4, 3.0, route)  # warm up
            cpu, started = cpu_seconds(server.pid), time.perf_counter()
            measured = load("open", port, requests, args.rate, args.duration, route)
            # The server's CPU per wall second under the load: how close one core is to saturation.
            result[f"{prefix}server_cpu_share"] = round((cpu_seconds(server.pid) - cpu) /
                                                        (time.perf_counter() - started), 3)
            result.update({f"{prefix}p50_ms_200rps": measured["p50_ms"], f"{prefix}p99_ms_200rps": measured["p99_ms"],
                           f"{prefix}p999_ms_200rps": measured["p999_ms"], f"{prefix}errors": measured["errors"],
                           f"{prefix}achieved_rps": measured["rps"]})
        finally:
            server.terminate()
            server.wait(timeout=30)
    result["p99_vs_baseline"] = round(result["p99_ms_200rps"] / max(result["baseline_p99_ms_200rps"], 1e-9), 2)
    emit("recs_latency", result)


if __name__ == "__main__":
    main()
