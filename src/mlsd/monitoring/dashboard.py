"""The monitoring page at ``/dashboard``: static HTML and the shared chart script; data from ``/dashboard/data``."""

from __future__ import annotations

import html
from functools import cache
from importlib import resources

STYLE = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1300px;color:#222}
figure.chart-box{display:inline-block;margin:8px 12px 8px 0}figcaption{font-weight:600;font-size:13px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}.diagram svg{max-width:100%;height:auto}h2{border-bottom:1px solid #ddd;padding-bottom:4px}
ul.legend{list-style:none;padding:0;margin:2px 0 0 56px;font-size:11px;max-width:560px}
.missed{color:#c00;font-weight:600}.met{color:#080}"""


@cache
def chart_script() -> str:
    """The dependency-free chart library (inlined in every page, so pages work offline)."""
    return resources.files("mlsd.monitoring").joinpath("static/charts.js").read_text(encoding="utf-8")


def dashboard_html(system: str, refresh_s: int = 5) -> str:
    title = html.escape(f"mlsd {system}: monitoring")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>{STYLE}</style></head>
<body><h1>{title}</h1><p id="status">loading…</p><div id="monitoring"></div>
<script>{chart_script()}</script>
<script>
async function refresh() {{
  const response = await fetch("dashboard/data", {{cache: "no-store"}});
  const state = await response.json();
  const box = document.getElementById("monitoring");
  box.replaceChildren();
  mlsdCharts.monitoring(box, state);
  document.getElementById("status").textContent =
    `${{state.records || 0}} requests, ${{state.labels || 0}} labels, ${{(state.windows || []).length}} windows, ` +
    `${{(state.alerts || []).length}} alerts`;
}}
refresh();
setInterval(refresh, {refresh_s * 1000});
</script></body></html>"""
