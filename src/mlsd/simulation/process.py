"""Starts ``mlsd serve`` as a child process the way a user would, and always stops it.

Used by the demo, the replay tests and the benchmarks: a free loopback port, a wait for
``/healthz``, and on exit SIGTERM (uvicorn drains, the lifespan flushes the feature log and the
monitor), then SIGKILL if it hangs, so no server outlives its caller.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from mlsd.core.errors import MlsdError
from mlsd.serving.auth import load_or_create_token
from mlsd.simulation.replay import ServiceClient


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """``with ServerProcess("ads", home, ["--ab-share", "0.5"]) as server: server.client.request(...)``."""

    def __init__(self, system: str, home: Path, args: Sequence[str] = (), *, port: int | None = None,
                 start_timeout_s: float = 120.0, log_path: Path | None = None) -> None:
        self.system, self.home, self.args = system, Path(home), list(args)
        self.port = port or free_port()
        self.start_timeout_s = start_timeout_s
        self.log_path = log_path or self.home / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None
        # the server reads the same token from the home (made here so the client has it from the start)
        self.token = None if "--no-token" in self.args else load_or_create_token(self.home)[0]
        self.client = ServiceClient("127.0.0.1", self.port, token=self.token)

    def __enter__(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "mlsd", "serve", self.system, "--home", str(self.home),
                   "--port", str(self.port), *self.args]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self.process.poll() is not None:
                raise MlsdError(f"mlsd serve exited with {self.process.returncode}; see {self.log_path}")
            try:
                status, _ = self.client.request("GET", "/healthz")
                if status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise MlsdError(f"mlsd serve did not answer /healthz within {self.start_timeout_s} s")
            time.sleep(0.25)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; returns the exit code."""
        self.client.close()
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
