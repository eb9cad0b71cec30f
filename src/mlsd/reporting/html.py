"""A self-contained HTML document builder: sections, tables, SVG diagrams and charts drawn from inlined data.

Charts use the same script as ``/dashboard`` with their data embedded as JSON, so the file opens
offline, in any browser, with nothing to fetch.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlsd.core.atomic import atomic_write
from mlsd.monitoring.dashboard import STYLE, chart_script


@dataclass(frozen=True)
class Budget:
    """A target a system states (p99 latency, throughput) and what was measured against it."""

    name: str
    measured: float | None
    target: float
    unit: str = "ms"
    lower_is_better: bool = True

    def met(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured <= self.target if self.lower_is_better else self.measured >= self.target


class HtmlReport:
    """Append blocks in reading order, then :meth:`write`."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.blocks: list[str] = []
        self.charts: list[dict[str, Any]] = []

    def section(self, title: str) -> None:
        self.blocks.append(f"<h2>{html.escape(title)}</h2>")

    def paragraph(self, text: str) -> None:
        self.blocks.append(f"<p>{html.escape(text)}</p>")

    def bullets(self, items: Sequence[str]) -> None:
        self.blocks.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        def cell(value: Any) -> str:
            if isinstance(value, float):
                return f"{value:.4g}"
            return html.escape("" if value is None else str(value))

        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
        self.blocks.append(f"<table><tr>{head}</tr>{body}</table>")

    def budgets(self, rows: Sequence[Budget]) -> None:
        """Measured figures against their targets; a missed target in red with the target beside it."""
        cells = []
        for b in rows:
            met = b.met()
            status = "no measurement" if met is None else "met" if met else "MISSED"
            style = "" if met is None else ' class="met"' if met else ' class="missed"'
            measured = "–" if b.measured is None else f"{b.measured:.4g} {b.unit}"
            cells.append(f"<tr><td style='text-align:left'>{html.escape(b.name)}</td><td{style}>"
                         f"{html.escape(measured)}</td><td>{'≤' if b.lower_is_better else '≥'} "
                         f"{b.target:g} {html.escape(b.unit)}</td><td{style}>{status}</td></tr>")
        self.blocks.append("<table class='budgets'><tr><th>budget</th><th>measured</th><th>target</th>"
                           f"<th>status</th></tr>{''.join(cells)}</table>")

    def svg(self, markup: str) -> None:
        """Trusted SVG markup made by this package (a diagram)."""
        self.blocks.append(f'<div class="diagram">{markup}</div>')

    def line_chart(self, series: Sequence[dict[str, Any]], **options: Any) -> None:
        """``series``: ``[{"name", "points": [[x, y], ...], "dashed"?}]``; options: title, xlabel, ylabel."""
        self._chart({"kind": "line", "series": list(series), "options": options})

    def monitoring(self, state: dict[str, Any]) -> None:
        """The dashboard's monitoring sections (drift, online metrics, A/B, alerts) for a monitor state."""
        self._chart({"kind": "monitoring", "state": state})

    def _chart(self, spec: dict[str, Any]) -> None:
        self.blocks.append(f'<div class="chart-slot" data-chart="{len(self.charts)}"></div>')
        self.charts.append(spec)

    def render(self) -> str:
        data = json.dumps(self.charts).replace("</", "<\\/")
        title = html.escape(self.title)
        blocks = "".join(self.blocks)
        return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>{STYLE}</style>
</head><body><h1>{title}</h1>{blocks}
<script>{chart_script()}</script>
<script>
const MLSD_CHARTS = {data};
for (const slot of document.querySelectorAll(".chart-slot")) {{
  const spec = MLSD_CHARTS[+slot.dataset.chart];
  if (spec.kind === "line") mlsdCharts.line(slot, spec.series, spec.options);
  else mlsdCharts.monitoring(slot, spec.state);
}}
</script></body></html>"""

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = self.render()

        def write(tmp: Path) -> None:
            tmp.write_text(text, encoding="utf-8")

        atomic_write(path, write)
        return path


def pipeline_diagram(stages: Sequence[tuple[str, str]]) -> str:
    """A left-to-right SVG of ``(title, detail)`` boxes joined by arrows (details wrap at ~34 characters)."""
    width, height, gap = 170, 120, 26
    total = len(stages) * (width + gap)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="architecture" width="{total}" height="{height + 20}" '
             f'viewBox="0 0 {total} {height + 20}" font-family="system-ui,sans-serif">',
             '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
             '<path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>']
    for i, (title, detail) in enumerate(stages):
        x = i * (width + gap) + 4
        parts.append(f'<rect x="{x}" y="10" width="{width}" height="{height}" rx="8" fill="#eef4fb" stroke="#4a78a8"/>')
        parts.append(f'<text x="{x + 8}" y="30" font-size="13" font-weight="600">{html.escape(title)}</text>')
        for j, line in enumerate(_wrap(detail, 30)[:6]):
            parts.append(f'<text x="{x + 8}" y="{48 + 14 * j}" font-size="10.5">{html.escape(line)}</text>')
        if i < len(stages) - 1:
            parts.append(f'<line x1="{x + width}" y1="{10 + height / 2}" x2="{x + width + gap - 2}" '
                         f'y2="{10 + height / 2}" stroke="#555" marker-end="url(#arrow)"/>')
    parts.append("</svg>")
    return "".join(parts)


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines
