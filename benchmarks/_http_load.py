"""A light HTTP/1.1 load generator (raw asyncio sockets, keep-alive), run in its own process.

Open loop: requests are *scheduled* at a fixed rate and latency is measured from the scheduled time,
so a slow server cannot hide queueing (no coordinated omission). Closed loop: ``connections``
clients send back to back for ``duration`` seconds; completions per second is the peak rate.

Usage: python _http_load.py open|closed|slow PORT PATH BODIES.jsonl RATE_OR_CONNECTIONS DURATION_S
Prints one JSON line: latencies percentiles (ms), requests, errors, achieved rate; the open loop also
splits latency by answer (200 admitted, 503 shed) and counts client timeouts (no answer within 2 s).
``slow`` keeps RATE_OR_CONNECTIONS connections each sending a partial body (reconnecting when the
server cuts one off) for DURATION_S.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, head: bytes, body: bytes) -> int:
        self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        status_line = await self.reader.readline()
        if not status_line:  # the server closed an idle keep-alive connection
            raise ConnectionResetError("connection closed by server")
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


TIMEOUT_S = 2.0


def _summary(latencies: list[float], statuses: list[int], seconds: float) -> dict[str, float]:
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    codes = np.asarray(statuses)
    result = {"requests": len(statuses), "errors": int(sum(s != 200 for s in statuses)),
              "rps": round(len(statuses) / seconds, 1),
              "p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
              "p999_ms": round(float(np.percentile(ms, 99.9)), 3), "max_ms": round(float(ms.max()), 3),
              "timeouts": int((codes == 0).sum()), "shed": int((codes == 503).sum()),
              "admitted": int((codes == 200).sum())}
    for name, code in (("admitted", 200), ("shed", 503)):
        chosen = ms[codes == code] if len(codes) == len(ms) else np.zeros(0)
        if chosen.size:
            result[f"{name}_p50_ms"] = round(float(np.percentile(chosen, 50)), 3)
            result[f"{name}_p99_ms"] = round(float(np.percentile(chosen, 99)), 3)
    return result


async def open_loop(port: int, head: bytes, bodies: list[bytes], rate: float, duration: float) -> dict[str, float]:
    pool: list[Connection] = [await Connection.open(port) for _ in range(8)]
    latencies: list[float] = []
    statuses: list[int] = []
    total = int(rate * duration)
    start = time.perf_counter() + 0.05

    async def one(i: int) -> None:
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        connection = pool.pop() if pool else await Connection.open(port)
        body = bodies[i % len(bodies)]
        try:
            status = await asyncio.wait_for(connection.post(head, body), TIMEOUT_S)
        except ConnectionResetError:  # idle connection closed: retry once on a fresh one
            connection = await Connection.open(port)
            status = await connection.post(head, body)
        except TimeoutError:  # a client timeout: this connection is abandoned
            status = 0
            connection.writer.close()
            connection = await Connection.open(port)
        except (ConnectionError, asyncio.IncompleteReadError):
            status = 599
            connection = await Connection.open(port)
        pool.append(connection)
        latencies.append(time.perf_counter() - scheduled)
        statuses.append(status)

    # Each request's task is created just before its send time: creating all of them up front (15,000
    # for 30 s at 500 req/s) took longer than the head start, and the first requests of every run
    # were then sent ~100 ms late and counted so, for the bare app as for a service.
    tasks = set()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0.002:
            await asyncio.sleep(delay - 0.001)
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*tasks)
    return _summary(latencies, statuses, time.perf_counter() - start)


async def closed_loop(port: int, head: bytes, bodies: list[bytes], connections: int,
                      duration: float) -> dict[str, float]:
    latencies: list[float] = []
    statuses: list[int] = []
    deadline = time.perf_counter() + duration

    async def client(k: int) -> None:
        connection = await Connection.open(port)
        i = k
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            statuses.append(await connection.post(head, bodies[i % len(bodies)]))
            latencies.append(time.perf_counter() - sent)
            i += connections

    start = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(connections)))
    return _summary(latencies, statuses, time.perf_counter() - start)


async def slow_clients(port: int, head: bytes, connections: int, duration: float) -> dict[str, float]:
    """``connections`` uploads that never finish their body; each one cut off is opened again."""
    deadline = time.perf_counter() + duration
    cut = 0

    async def client() -> None:
        nonlocal cut
        while time.perf_counter() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(head + b"1000\r\n\r\n" + b'{"context": ')  # 12 of the 1000 bytes promised
                await asyncio.wait_for(reader.read(1), max(deadline - time.perf_counter(), 0.01))
                cut += 1
                writer.close()
            except (TimeoutError, ConnectionError, OSError):
                pass

    await asyncio.gather(*(client() for _ in range(connections)))
    return {"connections": connections, "cut_off": cut}


def main() -> None:
    mode, port, path, bodies_file, level, duration = sys.argv[1:7]
    with open(bodies_file) as handle:
        bodies = [line.encode() for line in handle.read().splitlines()]
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: ").encode()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if mode == "open":
        result = asyncio.run(open_loop(int(port), head, bodies, float(level), float(duration)))
    elif mode == "slow":
        result = asyncio.run(slow_clients(int(port), head, int(level), float(duration)))
    else:
        result = asyncio.run(closed_loop(int(port), head, bodies, int(level), float(duration)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
