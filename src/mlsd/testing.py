"""Contract kits, as scikit-learn's ``check_estimator``: ``check_system`` runs any system's whole loop.

``check_system(system, home)`` builds the system on small data, serves it as a user would (``mlsd
serve`` in a child process), sends one request and a set of malformed ones (each must get a 4xx
naming the problem, never a 5xx), replays a little held-out traffic with labels, waits for the
monitor to take every label in, and writes the seven-step report. It returns what it saw, and
raises :class:`AssertionError` at the first broken promise. The online-store and transport kits
live beside their families (``mlsd.features.online.contract``, ``mlsd.events.contract``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlsd.lifecycle.run import replay_system
from mlsd.reporting import STEPS, write_design_report
from mlsd.simulation.process import ServerProcess
from mlsd.simulation.replay import wait_for_monitor
from mlsd.system import ReplayConfig, RunConfig, System, TaskType, Workspace

MALFORMED: tuple[Any, ...] = ([], "text", {"unknown_field": 1}, {})


def _require(condition: object, message: str) -> None:
    """The kit's check: an :class:`AssertionError` naming the broken promise (not stripped by ``-O``)."""
    if not condition:
        raise AssertionError(message)


def check_system(system: System, home: Path, *, data: str | None = None, replay_requests: int = 40,
                 label_delay_s: float = 600.0, built: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build -> serve -> one request -> malformed requests -> replay -> monitor -> report; returns the facts.

    ``built``: the results of the quick build (``RunConfig(small=True)``) ``home`` already holds; the
    build step is then skipped and the rest checks that build (a test session builds each system once).
    """
    _require(isinstance(system.task, TaskType), f"{system.name}: task must be a TaskType")
    ws = Workspace(home)
    results = built if built is not None else system.build(ws, RunConfig(data=data, progress=False, small=True))
    _require(ws.run_state() is not None, f"{system.name}: build wrote no {ws.run_file.name}")
    _require(system.format_results(results), f"{system.name}: empty results table")
    config = ReplayConfig(limit=replay_requests, label_delay_s=label_delay_s)
    facts: dict[str, Any] = {"system": system.name}
    with ServerProcess(system.name, ws.home, ["--label-delay-s", str(label_delay_s)]) as server:
        client = server.client
        status, health = client.request("GET", "/healthz")
        _require(status == 200 and health.get("system") == system.name, f"{system.name}: /healthz {status} {health}")
        first = next(iter(system.traffic(ws, config)))
        status, answer = client.request("POST", system.route, first.body)
        _require(status == 200, f"{system.name}: one request answered {status}: {answer}")
        _require(answer.get("ranked"), f"{system.name}: the answer ranks nothing: {answer}")
        facts["answer"] = answer
        for body in MALFORMED:
            status, problem = client.request("POST", system.route, body)
            _require(400 <= status < 500, f"{system.name}: malformed body {body!r} answered {status}")
            _require("error" in problem, f"{system.name}: a {status} without an error message: {problem}")
        status, spec = client.request("GET", "/openapi.json")
        _require(status == 200 and system.route in spec["paths"], f"{system.name}: route missing from OpenAPI")
        result = replay_system(system, ws, client, config)
        _require(result.requests > 0 and result.errors == 0, f"{system.name}: replay {result.to_dict()}")
        facts["replay"] = result.to_dict()
        status, _ = client.request("GET", "/dashboard/data")
        if status == 200:
            assert result.last_at_s is not None
            state = wait_for_monitor(client, result.last_at_s + label_delay_s)
            windows = state.get("windows", [])
            _require(windows and all(w.get("labels") for w in windows), f"{system.name}: monitor windows {windows}")
            facts["monitor"] = {"windows": len(windows), "labels": state.get("labels"),
                                "online": windows[-1]["labels"]["all"],
                                "rows": sum(int(w["labels"]["all"].get("rows") or 0) for w in windows)}
        else:
            facts["monitor"] = None
    report = write_design_report(system, ws)
    text = report.read_text(encoding="utf-8")
    missing = [title for title in STEPS if title not in text]
    _require(not missing, f"{system.name}: report lacks steps {missing}")
    facts["report"] = str(report)
    return facts
