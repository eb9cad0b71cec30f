"""Latency of the listings, PYMK, harmful and visual services at their target rates, against a bare baseline.

For each system of ``--systems``, uses a trained home (``--homes DIR`` holding ``SYSTEM/``, else ``mlsd
run SYSTEM`` on the real data from ``--data`` / ``MLSD_DATA_DIR`` into a temporary directory), starts
``mlsd serve SYSTEM`` (one uvicorn process) and the bare Starlette baseline, and drives each open-loop
from a separate load process on loopback (latency from each request's scheduled send time):
- listings at 200 req/s: clicks of 2,000 random sessions over the catalogue (each click updates its
  session's state, then the list is read back from it);
- pymk at 500 req/s: users drawn from the graph, 10 suggestions each (precomputed lists);
- harmful at 50 req/s: one held-out post's text per request (embedded by MiniLM in the request path);
- visual at 20 req/s: one held-out query image per request (base64 JPEG, MobileNet in the request path).
Prints JSON with each system's p50/p99/p999, errors (of them shed with 503) and the baseline's, and the
ratio. ``--repeat N`` alternates service and baseline N times (each service start on the home as it is)
and reports each run's figures and the median run's; on a shared 2-core machine one 20 s run is at the
mercy of pauses that hit the bare app too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from _common import emit
from serve_latency import free_port, load, wait_ready

HERE = Path(__file__).resolve().parent
TARGETS = {"listings": ("/v1/listings/similar", 200.0), "pymk": ("/v1/pymk/recommend", 500.0),
           "harmful": ("/v1/harmful/classify", 50.0), "visual": ("/v1/visual/search", 20.0)}


def bodies(system: str, home: Path, count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    run = json.loads((home / "run.json").read_text())
    if system == "listings":
        items = [c[3] for c in json.loads((home / "traffic.json").read_text())["clicks"]]
        return [json.dumps({"session_id": int(10**7 + rng.integers(2000)), "item_id": int(rng.choice(items))})
                for _ in range(count)]
    if system == "harmful":
        posts = json.loads((home / "traffic.json").read_text())["posts"]
        return [json.dumps({"items": [{"id": str(p[1]), "text": p[2]}]}) for p in
                (posts[i] for i in rng.integers(len(posts), size=count))]
    if system == "visual":
        queries = json.loads((home / "traffic.json").read_text())["queries"]
        picked = rng.integers(len(queries), size=min(count, 2000))  # bodies of ~10 kB: 2,000 are enough
        return [json.dumps({"image": queries[i][3], "k": 10}) for i in picked]
    users = run["precompute"]["users"]
    return [json.dumps({"user_id": int(rng.integers(users)), "k": 10}) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=os.environ.get("MLSD_DATA_DIR"))
    parser.add_argument("--homes", help="a directory with trained listings/ and pymk/ homes")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load at each target rate")
    parser.add_argument("--systems", default="listings,pymk", help="comma-separated: " + ",".join(TARGETS))
    parser.add_argument("--repeat", type=int, default=1, help="runs of service and baseline, alternating")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlsd-session-graph-bench-"))
    result: dict[str, Any] = {"duration_s": args.duration, "server": "uvicorn+starlette, 1 process"}
    for system in args.systems.split(","):
        route, rate = TARGETS[system]
        home = Path(args.homes) / system if args.homes else work / system
        if not (home / "run.json").exists():
            subprocess.run([sys.executable, "-m", "mlsd.cli", "run", system, "--home", str(home), "--quiet",
                            *(["--data", args.data] if args.data else [])], check=True)
        requests = work / f"{system}.jsonl"
        requests.write_text("\n".join(bodies(system, home, 20_000)))
        runs: dict[str, list[dict[str, Any]]] = {f"{system}_": [], f"{system}_baseline_": []}
        for _ in range(args.repeat):
            for prefix in runs:
                port = free_port()
                baseline = "baseline" in prefix
                command = ([sys.executable, str(HERE / "_baseline_app.py"), str(port), "1"] if baseline else
                           [sys.executable, "-m", "mlsd.cli", "serve", system, "--home", str(home), "--port",
                            str(port), "--max-in-flight", "256"])
                target = "/v1/ads/score" if baseline else route
                server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait_ready(port, target)
                    load("closed", port, requests, 4, 3.0, target)  # warm up
                    measured = load("open", port, requests, rate, args.duration, target)
                    runs[prefix].append({"p50_ms": measured["p50_ms"], "p99_ms": measured["p99_ms"],
                                         "p999_ms": measured["p999_ms"], "errors": measured["errors"],
                                         "shed": measured["shed"], "achieved_rps": measured["rps"]})
                finally:
                    server.terminate()
                    server.wait(timeout=30)
        for prefix, measured_runs in runs.items():
            median = sorted(measured_runs, key=lambda r: r["p99_ms"])[len(measured_runs) // 2]  # by p99
            result.update({f"{prefix}rate": rate, **{f"{prefix}{key}": value for key, value in median.items()}})
            if args.repeat > 1:
                result[f"{prefix}p99_ms_runs"] = [r["p99_ms"] for r in measured_runs]
                result[f"{prefix}shed_runs"] = [r["shed"] for r in measured_runs]
        result[f"{system}_p99_vs_baseline"] = round(result[f"{system}_p99_ms"] /
                                                    max(result[f"{system}_baseline_p99_ms"], 1e-9), 2)
    emit("system_latency", result)


if __name__ == "__main__":
    main()
