"""The ads service under uvicorn vs Ray Serve with 1 and 2 replicas: the same app, the same requests.

    python benchmarks/ray_serve.py --data ../shared/data --rates 20,100 --duration 10

Each server is ``mlsd serve ads`` on one trained home (TalkingData from ``--data`` / ``MLSD_DATA_DIR``,
else the generated marketplace): ``--workers 1`` (uvicorn), then ``--engine ray --replicas 1`` and
``--replicas 2`` (a local Ray cluster started by the server; Ray's HTTP proxy in front). Each is driven
open-loop at each of ``--rates`` req/s (one candidate per request; latency from each request's
scheduled send time), then closed-loop with 4 connections sending back to back: ``peak_ok_rps``
counts the answers that were 200. (With 32 connections the 25 ms queue budget sheds most requests,
and answering the shed ones takes the CPU: a storm, not a peak.) ``proxy_cost_p50_ms`` is Ray
with one replica minus uvicorn at the median of the lowest rate: what the proxy and its hop cost here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import emit
from serve_latency import bodies, build_ads_home, free_port, load, wait_ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=os.environ.get("MLSD_DATA_DIR"))
    parser.add_argument("--rates", default="20,100", help="open-loop requests per second, comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlsd-ray-serve-bench-"))
    home, source = build_ads_home(work, args.data)
    requests = work / "bodies.jsonl"
    requests.write_text("\n".join(bodies(home, 1, 2000, seed=1)))
    rates = [float(r) for r in args.rates.split(",")]
    result: dict[str, Any] = {"data": source, "rates": rates, "duration_s": args.duration}
    errors = 0
    for name, extra in (("uvicorn", ["--workers", "1"]), ("ray_1", ["--engine", "ray", "--replicas", "1"]),
                        ("ray_2", ["--engine", "ray", "--replicas", "2"])):
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "mlsd.cli", "serve", "ads", "--home", str(home), "--no-token",
                                   "--max-in-flight", "256", "--port", str(port), *extra],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, "/v1/ads/score", timeout=240)
            load("closed", port, requests, 8, 3.0)  # warm up
            for rate in rates:
                fixed = load("open", port, requests, rate, args.duration)
                tag = f"{name}_{rate:g}rps"
                result |= {f"{tag}_p50_ms": fixed["p50_ms"], f"{tag}_p99_ms": fixed["p99_ms"],
                           f"{tag}_errors": fixed["errors"]}
                errors += fixed["errors"]
                if rate == rates[-1]:  # the key names: the highest fixed rate
                    result |= {f"{name}_p50_ms": fixed["p50_ms"], f"{name}_p99_ms": fixed["p99_ms"]}
            peak = load("closed", port, requests, 4, args.duration)
            result |= {f"{name}_peak_ok_rps": round(peak["admitted"] / args.duration, 1),
                       f"{name}_peak_shed": peak["shed"]}
        finally:
            server.terminate()
            server.wait(timeout=60)
    result["errors"] = errors  # non-200 answers and timeouts at the fixed rates
    low = f"{rates[0]:g}rps"
    result["proxy_cost_p50_ms"] = round(result[f"ray_1_{low}_p50_ms"] - result[f"uvicorn_{low}_p50_ms"], 3)
    emit("ray_serve", result)


if __name__ == "__main__":
    main()
