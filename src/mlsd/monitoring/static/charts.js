// mlsd charts: dependency-free SVG line charts and the monitoring sections, shared by the service's
// /dashboard (data fetched from /dashboard/data) and the self-contained HTML report (data inlined).
"use strict";
const mlsdCharts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                  "#7f7f7f", "#bcbd22"];
  const el = (tag, attrs, parent) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  };
  // Human units: thousands separated, small values with two significant digits (0.0023, not 2.3e-3).
  const fmt = (v) => {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1000) return Math.round(v).toLocaleString("en-US");
    if (a !== 0 && a < 0.01) return v.toPrecision(2);
    return String(+v.toFixed(3));
  };
  // One colour per series name on every chart of the page (a feature keeps its colour from PSI to JS).
  const assigned = new Map();
  const colorOf = (name) => {
    if (!assigned.has(name)) assigned.set(name, COLORS[assigned.size % COLORS.length]);
    return assigned.get(name);
  };
  const date = (t) => new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";

  // series: [{name, points: [[x, y], ...], dashed?}]; options: {title, xlabel, ylabel, width, height}
  function line(container, series, options) {
    const o = Object.assign({width: 620, height: 260, title: "", xlabel: "", ylabel: ""}, options || {});
    const box = document.createElement("figure");
    box.className = "chart-box";
    const caption = document.createElement("figcaption");
    caption.textContent = o.title;
    box.appendChild(caption);
    container.appendChild(box);
    const points = series.flatMap((s) => s.points.filter((p) => p[1] !== null && isFinite(p[1])));
    const svg = el("svg", {class: "chart", width: o.width, height: o.height, viewBox: `0 0 ${o.width} ${o.height}`,
                           "data-points": points.length, "data-title": o.title}, box);
    const m = {l: 56, r: 16, t: 10, b: 38};
    const w = o.width - m.l - m.r, h = o.height - m.t - m.b;
    if (!points.length) {
      el("text", {x: m.l + 10, y: m.t + h / 2}, svg).textContent = "no data yet";
      return svg;
    }
    let [x0, x1] = [Math.min(...points.map((p) => p[0])), Math.max(...points.map((p) => p[0]))];
    let [y0, y1] = [Math.min(0, ...points.map((p) => p[1])), Math.max(...points.map((p) => p[1]))];
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    if (y0 === y1) { y1 = y0 + 1; }
    const sx = (x) => m.l + (x - x0) / (x1 - x0) * w, sy = (y) => m.t + h - (y - y0) / (y1 - y0) * h;
    el("rect", {x: m.l, y: m.t, width: w, height: h, fill: "none", stroke: "#999"}, svg);
    for (let i = 0; i <= 4; i++) {
      const yv = y0 + (y1 - y0) * i / 4, xv = x0 + (x1 - x0) * i / 4;
      el("text", {x: m.l - 4, y: sy(yv) + 4, "text-anchor": "end", "font-size": 10}, svg).textContent = fmt(yv);
      el("text", {x: sx(xv), y: m.t + h + 14, "text-anchor": "middle", "font-size": 10}, svg).textContent = fmt(xv);
    }
    el("text", {x: m.l + w / 2, y: o.height - 4, "text-anchor": "middle", "font-size": 11}, svg).textContent = o.xlabel;
    el("text", {x: 12, y: m.t + h / 2, "font-size": 11, transform: `rotate(-90 12 ${m.t + h / 2})`,
                "text-anchor": "middle"}, svg).textContent = o.ylabel;
    // markers: [{x, label}] vertical lines on the time axis (an alert, an injected drift)
    for (const mark of o.markers || []) {
      if (mark.x < x0 || mark.x > x1) continue;
      const line = el("line", {class: "marker", x1: sx(mark.x), x2: sx(mark.x), y1: m.t, y2: m.t + h,
                               stroke: mark.color || "#c00", "stroke-dasharray": "2 3"}, svg);
      el("title", {}, line).textContent = mark.label;
    }
    const legend = document.createElement("ul");
    legend.className = "legend";
    series.forEach((s) => {
      const color = s.color || colorOf(s.name);
      const pts = s.points.filter((p) => p[1] !== null && isFinite(p[1]));
      if (!pts.length) return;
      const poly = el("polyline", {class: "series", fill: "none", stroke: color, "stroke-width": 1.6,
                                   "stroke-dasharray": s.dashed ? "4 3" : "", "data-name": s.name,
                                   points: pts.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ")},
                      svg);
      el("title", {}, poly).textContent = s.name;  // the whole name on hover
      const item = document.createElement("li");
      item.innerHTML = `<span style="color:${color}">${s.dashed ? "┄" : "━"}</span> `;
      item.appendChild(document.createTextNode(s.name));
      legend.appendChild(item);
    });
    box.appendChild(legend);
    return svg;
  }

  function table(container, header, rows, title) {
    if (title) { const h = document.createElement("h3"); h.textContent = title; container.appendChild(h); }
    const t = document.createElement("table");
    t.innerHTML = "<tr>" + header.map((c) => `<th>${c}</th>`).join("") + "</tr>" +
      rows.map((r) => "<tr>" + r.map((c) => `<td>${typeof c === "number" ? fmt(c) : (c ?? "")}</td>`).join("") +
                     "</tr>").join("");
    container.appendChild(t);
    return t;
  }

  // The A/B test in words: which arm, how sure, what to do.
  function verdict(ab) {
    if (ab.p_value === null || ab.p_value === undefined) return "Not enough labelled traffic for a verdict yet.";
    const key = Object.keys(ab).find((k) => k.endsWith("_difference") && !k.startsWith("ne")) || "rate_difference";
    const diff = ab[key], name = key.replace("_difference", "");
    const better = diff > 0 ? "higher" : "lower";
    if (ab.p_value < 0.05) {
      return `Verdict: the challenger's ${name} is ${better} than the champion's by ${fmt(Math.abs(diff))} ` +
             `(p = ${fmt(ab.p_value)}, significant at 5%).`;
    }
    return `Verdict: no significant difference in ${name} between the arms yet (p = ${fmt(ab.p_value)}); ` +
           "keep the champion and keep collecting traffic.";
  }

  // The monitoring sections from a monitor state ({windows, alerts, ab, window_s, ...}).
  function monitoring(container, state) {
    const windows = state.windows || [];
    const alerts = state.alerts || [];
    const t0 = windows.length ? windows[0].start : 0;
    const hours = (t) => (t - t0) / 3600;
    const axis = windows.length ? `hours since ${date(t0)}` : "hours";
    const alertMarks = [...new Set(alerts.map((a) => a.window_start))]
      .map((t) => ({x: hours(t), label: `alert in the window from ${date(t)}`}));
    if (state.drift_at_s) alertMarks.push({x: hours(state.drift_at_s), label: "drift injected", color: "#555"});
    const columns = windows.length ? Object.keys(windows[windows.length - 1].drift) : [];
    const features = columns.filter((c) => c !== "prediction");
    const worst = features.map((c) => [c, Math.max(...windows.map((w) => (w.drift[c] || {psi: 0}).psi))])
      .sort((a, b) => b[1] - a[1]).slice(0, 8).map((x) => x[0]);
    const drift = (c, stat) => windows.map((w) => [hours(w.start), w.drift[c] ? w.drift[c][stat] : null]);
    line(container, worst.map((c) => ({name: c, points: drift(c, "psi")})),
         {title: "Feature drift: PSI per window (8 highest)", xlabel: axis,
          ylabel: "PSI", markers: alertMarks});
    line(container, worst.map((c) => ({name: c, points: drift(c, "js")})),
         {title: "Feature drift: Jensen–Shannon distance per window", xlabel: axis, ylabel: "JS distance",
          markers: alertMarks});
    line(container, [{name: "prediction PSI", points: drift("prediction", "psi")},
                     {name: "prediction JS", points: drift("prediction", "js")}],
         {title: "Prediction drift (champion arm)", xlabel: axis, ylabel: "statistic", markers: alertMarks});
    const labelled = windows.filter((w) => w.labels);
    const arms = labelled.length ? Object.keys(labelled[0].labels) : [];
    const metric = (arm, key) => labelled.map((w) => [hours(w.start), (w.labels[arm] || {})[key] ?? null]);
    line(container, arms.flatMap((a) => [{name: `${a} observed`, points: metric(a, "rate")},
                                         {name: `${a} predicted`, points: metric(a, "mean_prediction"), dashed: true}]),
         {title: "Online rate (observed vs predicted) per window", xlabel: axis, ylabel: "rate"});
    line(container, arms.map((a) => ({name: a, points: metric(a, "calibration")})),
         {title: "Online calibration (predicted / observed)", xlabel: axis, ylabel: "ratio"});
    line(container, arms.map((a) => ({name: a, points: metric(a, "ne")})),
         {title: "Online normalized entropy", xlabel: axis, ylabel: "NE"});
    if (state.ab) {
      const ab = state.ab, row = (arm) => [arm, ab[arm].rows, ab[arm].positives, ab[arm].rate, ab[arm].calibration,
                                            ab[arm].ne, ab[arm].auc];
      const tbl = table(container, ["arm", "rows", "positives", "rate", "calibration", "NE", "AUC"],
                        [row("champion"), row("challenger")], "A/B test");
      tbl.id = "ab-table";
      const p = document.createElement("p");
      p.textContent = (ab.rate_difference !== undefined ?
        `rate difference ${fmt(ab.rate_difference)} (95% CI ${ab.rate_ci95.map(fmt).join(" .. ")}), ` +
        `z = ${fmt(ab.z)}, p = ${fmt(ab.p_value)}` : "") + (ab.ne_difference !== undefined ?
        `; NE difference ${fmt(ab.ne_difference)} (95% CI ${ab.ne_ci95.map(fmt).join(" .. ")})` : "");
      container.appendChild(p);
      const words = document.createElement("p");
      words.id = "ab-verdict";
      words.innerHTML = "<b></b>";
      words.firstChild.textContent = verdict(ab);
      container.appendChild(words);
    }
    // Alerts per column: when first seen, in how many windows, the worst PSI (not one row per window).
    const byColumn = new Map();
    for (const a of alerts) {
      const c = byColumn.get(a.column) || {first: a.window_start, windows: new Set(), psi: 0, reasons: new Set()};
      c.first = Math.min(c.first, a.window_start);
      c.windows.add(a.window_start);
      c.psi = Math.max(c.psi, a.psi || 0);
      a.reasons.forEach((r) => c.reasons.add(r));
      byColumn.set(a.column, c);
    }
    const summary = table(container, ["column", "first seen", "windows", "worst PSI", "reasons"],
          [...byColumn.entries()].sort((a, b) => a[1].first - b[1].first)
            .map(([column, c]) => [column, date(c.first), c.windows.size, c.psi, [...c.reasons].join(", ")]),
          `Alerts: ${alerts.length} in ${new Set(alerts.map((a) => a.window_start)).size} of ${windows.length} ` +
          `windows, ${byColumn.size} columns`);
    summary.id = "alerts-table";
  }

  return {line, table, monitoring};
})();
