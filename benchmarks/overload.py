"""The ads service beyond its capacity: load shedding, admitted latency, slow clients (issue "Hold under overload").

Builds an ads home (real TalkingData with --data / MLSD_DATA_DIR, else generated clicks), starts
``mlsd serve ads`` (one uvicorn process, default edge settings) and drives it from load processes
on loopback with 10-candidate requests:
- closed loop, 4 connections: the peak rate (answers 200 per second);
- open loop at 80% of the peak: the baseline p99 (latency from the scheduled send time);
- open loop at 2x and 3x the peak: p99 of the admitted (200) answers, p99 of the shed (503)
  answers, client timeouts (no answer within 2 s);
- open loop at 80% of the peak while 256 connections each hold a partial body (reopened when the
  server cuts them off after its body timeout);
- the server's RSS before and after 4 concurrent uploads of 250 MB each, chunked (no length
  declared) and with a declared ``Content-Length``.
Targets: admitted p99 at 2x/3x <= 2x the 80% p99, 0 timeouts, shed p99 <= 5 ms, the 80% p99 with
slow clients within 2x of the one without, RSS growth < 20 MB under the uploads.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import emit
from serve_latency import HERE, bodies, build_ads_home, free_port, load, wait_ready


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def _upload(port: int, size: int, chunked: bool) -> str:
    """Try to send ``size`` bytes of body; returns the status line the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
        connection.sendall(f"POST /v1/ads/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           f"{framing}\r\n\r\n".encode())
        chunk, sent = b"x" * 65536, 0
        try:
            while sent < size:
                connection.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n" if chunked else chunk)
                sent += len(chunk)
        except OSError:  # the server answered and closed while the upload went on
            pass
        return connection.recv(64).split(b"\r\n")[0].decode()


def _uploads(port: int, pid: int, chunked: bool) -> dict[str, Any]:
    before = _rss_mb(pid)
    answers: list[str] = []
    peak = before
    threads = [threading.Thread(target=lambda: answers.append(_upload(port, 250 << 20, chunked))) for _ in range(4)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, _rss_mb(pid))
        time.sleep(0.01)
    return {"rss_growth_mb": round(peak - before, 1), "answers": sorted(set(answers))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=os.environ.get("MLSD_DATA_DIR"))
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per phase")
    parser.add_argument("--candidates", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlsd-overload-"))
    home, source = build_ads_home(work, args.data)
    body_file = work / "bodies.jsonl"
    body_file.write_text("\n".join(bodies(home, args.candidates, 1000, seed=1)))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlsd.cli", "serve", "ads", "--home", str(home),
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result: dict[str, Any] = {"data": source, "candidates": args.candidates, "duration_s": args.duration}
    try:
        wait_ready(port, "/v1/ads/score")
        load("closed", port, body_file, 8, 2.0)  # warm up
        # a few connections: enough to keep the scorer busy, too few to fill the queue (shed answers
        # are not capacity)
        closed = load("closed", port, body_file, 4, args.duration)
        peak = round(closed["admitted"] / closed["requests"] * closed["rps"], 1)
        base = load("open", port, body_file, 0.8 * peak, args.duration)
        result.update({"peak_rps": peak, "p99_ms_80pct": base["p99_ms"], "errors_80pct": base["errors"]})
        timeouts = 0
        shed_p99 = 0.0
        for factor in (2, 3):
            over = load("open", port, body_file, factor * peak, args.duration)
            timeouts += over["timeouts"]
            shed_p99 = max(shed_p99, over.get("shed_p99_ms", 0.0))
            result.update({f"p99_ms_admitted_{factor}x": over.get("admitted_p99_ms"),
                           f"admitted_share_{factor}x": round(over["admitted"] / max(over["requests"], 1), 3),
                           f"shed_p99_ms_{factor}x": over.get("shed_p99_ms")})
        slow = subprocess.Popen([sys.executable, str(HERE / "_http_load.py"), "slow", str(port), "/v1/ads/score",
                                 str(body_file), "256", str(args.duration + 4)],
                                stdout=subprocess.PIPE, text=True)
        time.sleep(2.0)  # the slow connections are open before the measured traffic starts
        with_slow = load("open", port, body_file, 0.8 * peak, args.duration)
        slow_out, _ = slow.communicate(timeout=args.duration + 30)
        result.update({"timeouts": timeouts, "shed_p99_ms": shed_p99,
                       "p99_ms_80pct_slow_clients": with_slow["p99_ms"], "errors_80pct_slow_clients":
                       with_slow["errors"], "slow_clients": slow_out.strip().splitlines()[-1] if slow_out else None})
        chunked, declared = _uploads(port, server.pid, True), _uploads(port, server.pid, False)
        result.update({"uploads_4x250mb_chunked": chunked, "uploads_4x250mb_declared": declared,
                       "rss_growth_mb_uploads": max(chunked["rss_growth_mb"], declared["rss_growth_mb"])})
    finally:
        server.terminate()
        server.wait(timeout=30)
    result["admitted_2x_vs_80pct"] = round(result["p99_ms_admitted_2x"] / result["p99_ms_80pct"], 2)
    result["admitted_3x_vs_80pct"] = round(result["p99_ms_admitted_3x"] / result["p99_ms_80pct"], 2)
    result["slow_clients_vs_80pct"] = round(result["p99_ms_80pct_slow_clients"] / result["p99_ms_80pct"], 2)
    emit("overload", result)


if __name__ == "__main__":
    main()
