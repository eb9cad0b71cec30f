"""Ads scoring service latency under fixed request rates, against a bare-framework baseline in the same run.

Builds an ads home (real TalkingData with --data / MLSD_DATA_DIR, else generated clicks), starts
``mlsd serve ads`` (uvicorn, one process) and the baseline (bare Starlette returning a constant),
and drives each from a separate load process on loopback:
- open loop, 1 candidate at 500 req/s and 100 candidates at 100 req/s (latency from the scheduled
  send time, so queueing counts);
- closed loop with 32 connections for the peak rate.
Prints JSON with p50/p99/p99.9 per phase and errors.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from _common import emit
from mlsd.core.errors import DataNotFoundError
from mlsd.datasets import TALKINGDATA_SCHEMA, locate, synthetic_clicks
from mlsd.events import EventLog
from mlsd.systems.ads.run import AdsRun

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, path: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1)
            return
        except OSError as exc:
            if getattr(exc, "code", None) == 405:  # the route exists (GET on a POST route)
                return
            time.sleep(0.2)
    raise TimeoutError(f"server on port {port} did not come up")


def bodies(home: Path, candidates: int, count: int, seed: int) -> list[str]:
    with EventLog(home / "events" / "clicks", TALKINGDATA_SCHEMA, writer=False) as log:
        clicks = log.read(["ip", "app", "device", "os", "channel", "click_time"])
    end = pc.max(pc.cast(clicks.column("click_time"), pa.int64())).as_py() / 1e6 + 1e-6
    rows = clicks.select(["ip", "app", "device", "os", "channel"]).to_pylist()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        context = rows[rng.integers(len(rows))]
        picks = rng.integers(len(rows), size=candidates)
        out.append(json.dumps({"timestamp": end, "context": {k: context[k] for k in ("ip", "device", "os")},
                               "candidates": [{"app": rows[i]["app"], "channel": rows[i]["channel"]}
                                              for i in picks]}))
    return out


def build_ads_home(work: Path, data: str | None) -> tuple[Path, str]:
    """An ads home with a LightGBM champion under ``work``: TalkingData when ``data`` has it, else generated."""
    home = work / "ads"
    try:
        locate("talkingdata", data)
        source, clicks = "talkingdata", None
    except DataNotFoundError:
        source, clicks = "generated clicks", synthetic_clicks(100_000)
    AdsRun(home, data=data, clicks=clicks, models=("lgbm",), progress=False, flat_datasets=False).run()
    return home, source


def load(mode: str, port: int, bodies_file: Path, level: float, duration: float,
         route: str = "/v1/ads/score") -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(HERE / "_http_load.py"), mode, str(port), route,
                          str(bodies_file), str(level), str(duration)], check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=os.environ.get("MLSD_DATA_DIR"))
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--workers", type=int, default=2, help="server processes (service and baseline alike)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlsd-serve-bench-"))
    home, source = build_ads_home(work, args.data)
    files = {}
    for n, count in ((1, 2000), (100, 500)):
        files[n] = work / f"bodies-{n}.jsonl"
        files[n].write_text("\n".join(bodies(home, n, count, seed=n)))

    result: dict[str, Any] = {"data": source, "duration_s": args.duration,
                              "server": f"uvicorn+starlette, {args.workers} process(es)"}
    for prefix in ("", "baseline_"):
        port = free_port()
        full = ([sys.executable, "-m", "mlsd.cli", "serve", "ads", "--home", str(home), "--max-in-flight", "256",
                 "--workers", str(args.workers), "--port", str(port)] if prefix == "" else
                [sys.executable, str(HERE / "_baseline_app.py"), str(port), str(args.workers)])
        server = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, "/v1/ads/score")
            load("closed", port, files[1], 8, 2.0)  # warm up
            one = load("open", port, files[1], 500, args.duration)
            peak = load("closed", port, files[1], 32, args.duration)
            result.update({f"{prefix}p50_ms_500rps": one["p50_ms"], f"{prefix}p99_ms_500rps": one["p99_ms"],
                           f"{prefix}p999_ms_500rps": one["p999_ms"], f"{prefix}peak_rps": peak["rps"],
                           f"{prefix}errors": one["errors"] + peak["errors"]})
            if prefix == "":
                hundred = load("open", port, files[100], 100, args.duration)
                result.update({"p50_ms_100cand_100rps": hundred["p50_ms"],
                               "p99_ms_100cand_100rps": hundred["p99_ms"],
                               "p999_ms_100cand_100rps": hundred["p999_ms"],
                               "errors": one["errors"] + peak["errors"] + hundred["errors"]})
        finally:
            server.terminate()
            server.wait(timeout=30)
    # The key names for the service's own figures.
    result["p99_ms_1cand_500rps"] = result.pop("p99_ms_500rps")
    result["p50_ms_1cand_500rps"] = result.pop("p50_ms_500rps")
    result["p999_ms_1cand_500rps"] = result.pop("p999_ms_500rps")
    result["peak_rps_1cand"] = result.pop("peak_rps")
    result["peak_vs_baseline"] = round(result["peak_rps_1cand"] / result["baseline_peak_rps"], 3)
    emit("serve_latency", result)


if __name__ == "__main__":
    main()
