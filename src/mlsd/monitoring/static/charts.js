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
  const fmt = (v) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0)) ? v.toExponential(1) : +v.toFixed(3);

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
    const m = {l: 56, r: 150, t: 10, b: 38};
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
    series.forEach((s, i) => {
      const color = s.color || COLORS[i % COLORS.length];
      const pts = s.points.filter((p) => p[1] !== null && isFinite(p[1]));
      if (!pts.length) return;
      el("polyline", {class: "series", fill: "none", stroke: color, "stroke-width": 1.6,
                      "stroke-dasharray": s.dashed ? "4 3" : "", "data-name": s.name,
                      points: pts.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ")}, svg);
      el("text", {x: m.l + w + 8, y: m.t + 12 + 13 * i, fill: color, "font-size": 11}, svg).textContent = s.name;
    });
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

  // The monitoring sections from a monitor state ({windows, alerts, ab, window_s, ...}).
  function monitoring(container, state) {
    const windows = state.windows || [];
    const t0 = windows.length ? windows[0].start : 0;
    const hours = (t) => (t - t0) / 3600;
    const columns = windows.length ? Object.keys(windows[windows.length - 1].drift) : [];
    const features = columns.filter((c) => c !== "prediction");
    const worst = features.map((c) => [c, Math.max(...windows.map((w) => (w.drift[c] || {psi: 0}).psi))])
      .sort((a, b) => b[1] - a[1]).slice(0, 8).map((x) => x[0]);
    const drift = (c, stat) => windows.map((w) => [hours(w.start), w.drift[c] ? w.drift[c][stat] : null]);
    line(container, worst.map((c) => ({name: c, points: drift(c, "psi")})),
         {title: "Feature drift: PSI per window (8 highest)", xlabel: "hours since first window", ylabel: "PSI"});
    line(container, worst.map((c) => ({name: c, points: drift(c, "js")})),
         {title: "Feature drift: Jensen–Shannon distance per window", xlabel: "hours since first window",
          ylabel: "JS distance"});
    line(container, [{name: "PSI", points: drift("prediction", "psi")}, {name: "JS", points: drift("prediction", "js")}],
         {title: "Prediction drift (champion arm)", xlabel: "hours since first window", ylabel: "statistic"});
    const labelled = windows.filter((w) => w.labels);
    const arms = labelled.length ? Object.keys(labelled[0].labels) : [];
    const metric = (arm, key) => labelled.map((w) => [hours(w.start), (w.labels[arm] || {})[key] ?? null]);
    line(container, arms.flatMap((a) => [{name: `${a} observed`, points: metric(a, "rate")},
                                         {name: `${a} predicted`, points: metric(a, "mean_prediction"), dashed: true}]),
         {title: "Online rate (observed vs predicted) per window", xlabel: "hours since first window", ylabel: "rate"});
    line(container, arms.map((a) => ({name: a, points: metric(a, "calibration")})),
         {title: "Online calibration (predicted / observed)", xlabel: "hours since first window", ylabel: "ratio"});
    line(container, arms.map((a) => ({name: a, points: metric(a, "ne")})),
         {title: "Online normalized entropy", xlabel: "hours since first window", ylabel: "NE"});
    if (state.ab) {
      const ab = state.ab, row = (arm) => [arm, ab[arm].rows, ab[arm].positives, ab[arm].rate, ab[arm].calibration,
                                            ab[arm].ne, ab[arm].auc];
      const tbl = table(container, ["arm", "rows", "positives", "rate", "calibration", "NE", "AUC"],
                        [row("champion"), row("challenger")], "A/B test");
      tbl.id = "ab-table";
      const p = document.createElement("p");
      p.textContent = `rate difference ${fmt(ab.rate_difference)} (95% CI ${ab.rate_ci95.map(fmt).join(" .. ")}), ` +
        `z = ${fmt(ab.z)}, p = ${fmt(ab.p_value)}` + (ab.ne_difference !== undefined ?
        `; NE difference ${fmt(ab.ne_difference)} (95% CI ${ab.ne_ci95.map(fmt).join(" .. ")})` : "");
      container.appendChild(p);
    }
    table(container, ["window start (h)", "column", "reasons", "PSI", "JS"],
          (state.alerts || []).slice(0, 200).map((a) => [hours(a.window_start), a.column, a.reasons.join(","), a.psi,
                                                         a.js]), `Alerts (${(state.alerts || []).length})`);
  }

  return {line, table, monitoring};
})();
