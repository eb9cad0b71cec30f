"""The book's seven-step design report, laid out the same way for every system.

A system fills the steps through :meth:`DesignReport.step` in order; the renderer owns the titles,
the numbering and the monitoring section's live data, so every system's report reads alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsd.core.errors import MlsdError
from mlsd.reporting.html import HtmlReport

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

    def __init__(self, title: str) -> None:
        super().__init__(title)
        self.steps_done = 0

    def step(self, number: int) -> None:
        """Start step ``number`` (1..7); steps come in order, and none is skipped."""
        if number != self.steps_done + 1:
            raise MlsdError(f"design report: step {number} after step {self.steps_done}; steps go 1..7 in order")
        self.steps_done = number
        self.section(f"{number}. {STEPS[number - 1]}")

    def monitor_section(self, state: dict[str, Any] | None, what: str) -> None:
        """The monitor's windows, alerts and charts, said in one line with ``what`` they measure."""
        if not state:
            self.paragraph("No replay has run against this home yet: no monitor state.")
            return
        self.paragraph(f"{len(state['windows'])} windows, {len(state['alerts'])} alerts; {what}")
        self.monitoring(state)

    def render(self) -> str:
        if self.steps_done != len(STEPS):
            raise MlsdError(f"design report {self.title!r}: {self.steps_done} of {len(STEPS)} steps written")
        return super().render()


def monitoring_state(ws: Workspace) -> dict[str, Any] | None:
    """The service's last published monitor state (None before any monitored traffic)."""
    from mlsd.monitoring.runner import read_state

    return read_state(ws.monitoring)


def write_design_report(system: System, ws: Workspace, out: Path | None = None) -> Path:
    """Build ``system``'s report from the state in ``ws`` and write it (default ``HOME/report.html``)."""
    if ws.run_state() is None:
        raise MlsdError(f"{system.name}: nothing built in {ws.home} yet (run: mlsd run {system.name})")
    report = DesignReport(f"{system.name}: {system.summary}")
    system.report(ws, report)
    return report.write(out or ws.report_path)
