"""The book's seven-step design report, laid out the same way for every system.

A system fills the steps through :meth:`DesignReport.step` in order; the renderer owns the titles,
the numbering and the monitoring section's live data, so every system's report reads alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsd.core.errors import MlsdError
from mlsd.core.timeutil import utc_text
from mlsd.reporting.html import Budget, HtmlReport

if TYPE_CHECKING:
    from mlsd.system import System, Workspace

STEPS = (
    "Clarify requirements",
    "Frame the problem as an ML task",
    "Data preparation",
    "Model development",
    "Evaluation",
    "Deployment and serving",
    "Monitoring",
)


class DesignReport(HtmlReport):
    """An :class:`HtmlReport` whose sections are the seven steps, entered in order, each exactly once."""

    def __init__(self, title: str, versions: Sequence[Mapping[str, Any]] = (),
                 budgets: Sequence[Budget] = ()) -> None:
        super().__init__(title)
        self.steps_done = 0
        self.versions = list(versions)  # the served model's registered versions, closing step 6
        self.served_budgets = list(budgets)  # the system's serving budgets against the last replay, too

    def step(self, number: int) -> None:
        """Start step ``number`` (1..7); steps come in order, and none is skipped."""
        if number != self.steps_done + 1:
            raise MlsdError(f"design report: step {number} after step {self.steps_done}; steps go 1..7 in order")
        if number == 7 and self.served_budgets:
            self.budgets(self.served_budgets)
        if number == 7 and self.versions:
            self.paragraph("Registered versions of the served model (MLflow; `mlsd models` lists every model):")
            self.table(["model", "version", "kind", "aliases", "registered", "promotion guard"],
                       [[v["model"], f"v{v['version']}", v["kind"], ", ".join(v["aliases"]) or "-", v["created"],
                         v["guard"] or "-"] for v in self.versions])
        self.steps_done = number
        self.section(f"{number}. {STEPS[number - 1]}")

    def monitor_section(self, state: dict[str, Any] | None, what: str) -> None:
        """The monitor's windows, alerts and charts, said in one line with ``what`` they measure."""
        if not state:
            self.paragraph("No replay has run against this home yet: no monitor state.")
            return
        windows, alerts = state["windows"], state["alerts"]
        span = f" from {utc_text(windows[0]['start'])} to {utc_text(windows[-1]['end'])}" if windows else ""
        self.paragraph(f"{len(windows)} windows{span}, {len(alerts)} alerts; {what}")
        if alerts:
            by_column: dict[str, dict[str, Any]] = {}
            for a in alerts:
                seen = by_column.setdefault(a["column"], {"first": a["window_start"], "windows": set(), "psi": 0.0})
                seen["first"] = min(seen["first"], a["window_start"])
                seen["windows"].add(a["window_start"])
                seen["psi"] = max(seen["psi"], a.get("psi") or 0.0)
            self.table(["alerting column", "first seen", "windows", "worst PSI"],
                       [[c, utc_text(v["first"]), len(v["windows"]), v["psi"]]
                        for c, v in sorted(by_column.items(), key=lambda kv: kv[1]["first"])])
        self.monitoring(state)

    def render(self) -> str:
        if self.steps_done != len(STEPS):
            raise MlsdError(f"design report {self.title!r}: {self.steps_done} of {len(STEPS)} steps written")
        return super().render()


def monitoring_state(ws: Workspace) -> dict[str, Any] | None:
    """The service's last published monitor state (None before any monitored traffic)."""
    from mlsd.monitoring.runner import read_state

    return read_state(ws.monitoring)


def registered_versions(ws: Workspace, name: str) -> list[dict[str, Any]]:
    """The rows of the report's registry table: every version of ``name`` with aliases, date and guard."""
    return [{"model": name, **v.as_dict()} for v in ws.registry.versions(name)]


def write_design_report(system: System, ws: Workspace, out: Path | None = None) -> Path:
    """Build ``system``'s report from the state in ``ws`` and write it (default ``HOME/report.html``)."""
    if ws.run_state() is None:
        raise MlsdError(f"{system.name}: nothing built in {ws.home} yet (run: mlsd run {system.name})")
    pick = getattr(system, "served_model_name", None)
    name = str(pick(ws)) if callable(pick) else system.model_name
    budgets = []
    target = getattr(system, "p99_budget_ms", None)  # optional: the system's stated p99 budget
    if target is not None:
        replayed = ws.home / "replay.json"
        p99 = json.loads(replayed.read_text()).get("latency_ms", {}).get("p99") if replayed.exists() else None
        budgets.append(Budget("p99 latency of the last replay (client side, sequential, loopback HTTP)", p99,
                              float(target)))
    report = DesignReport(f"{system.name}: {system.summary}", registered_versions(ws, name), budgets)
    system.report(ws, report)
    return report.write(out or ws.report_path)
