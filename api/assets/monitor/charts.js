// The Overview tab: the tenant's job counts, charts of throughput, failures
// and latency drawn as SVG from `GET /jobs/stats`, and the schedulers.
"use strict";

import { $, el, call, ago } from "/monitor/api.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 600, H = 180, PAD_L = 44, PAD_B = 22, PAD_T = 8;
const BUCKET = { "1h": "1m", "24h": "1h" };
const STATUSES = ["scheduled", "queued", "running", "retrying", "succeeded", "failed", "cancelled"];

export function init() { $("chart-window").addEventListener("change", () => show()); }

export async function show() {
  const window = $("chart-window").value;
  const [monitor, stats] = await Promise.all([
    call("GET", "/monitor"),
    call("GET", "/jobs/stats?window=" + window + "&bucket=" + BUCKET[window]),
  ]);
  $("counts").replaceChildren(...STATUSES.map((s) =>
    el("div", { class: "tile" }, el("b", { class: "status-" + s }, monitor.jobs[s] || 0), el("span", {}, s))));
  const points = merge(stats.series);
  const label = window === "1h" ? (d) => d.toTimeString().slice(0, 5) : (d) => d.getHours() + ":00";
  $("charts").replaceChildren(
    chart("Jobs finished per " + (window === "1h" ? "minute" : "hour"), points, label, [
      { name: "succeeded", color: "#1a7f37", value: (p) => p.succeeded },
      { name: "failed", color: "#cf222e", value: (p) => p.failed },
      { name: "retried", color: "#9a6700", value: (p) => p.retried },
    ], "bars"),
    chart("Run and wait time, p95 (ms, slowest kind)", points, label, [
      { name: "run p95", color: "#0969da", value: (p) => p.run },
      { name: "wait p95", color: "#8250df", value: (p) => p.wait },
    ], "lines"));
  const cluster = monitor.cluster;
  $("cluster").hidden = !cluster;
  if (cluster) {
    $("schedulers").replaceChildren(...(cluster.schedulers.length ? cluster.schedulers.map((s) => el("tr", {},
      el("td", {}, s.instance), el("td", { class: s.alive ? "alive" : "dead" }, s.alive ? "alive" : "silent"),
      el("td", {}, s.role), el("td", { class: "num" }, s.fired), el("td", { class: "num" }, s.skipped),
      el("td", { class: "num" }, s.last_lag_ms + " ms"), el("td", {}, ago(new Date(s.beat * 1000).toISOString()))))
      : [el("tr", {}, el("td", { colspan: "7", class: "muted" }, "no scheduler has a heartbeat"))]));
  }
  return monitor;
}

// Every kind's series summed per bucket (latencies: the slowest kind's).
function merge(series) {
  const byAt = new Map();
  for (const s of series) {
    for (const p of s.points) {
      const m = byAt.get(p.at) || { at: new Date(p.at), succeeded: 0, failed: 0, retried: 0, run: null, wait: null };
      m.succeeded += p.succeeded; m.failed += p.failed; m.retried += p.retried;
      if (p.run_p95_ms !== null) m.run = Math.max(m.run || 0, p.run_p95_ms);
      if (p.wait_p95_ms !== null) m.wait = Math.max(m.wait || 0, p.wait_p95_ms);
      byAt.set(p.at, m);
    }
  }
  return [...byAt.values()].sort((a, b) => a.at - b.at);
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function chart(title, points, label, lines, style) {
  const root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title });
  const top = Math.max(1, ...points.map((p) => style === "bars"
    ? lines.reduce((sum, l) => sum + (l.value(p) || 0), 0)
    : Math.max(0, ...lines.map((l) => l.value(p) || 0))));
  const plotW = W - PAD_L - 4, plotH = H - PAD_B - PAD_T;
  const y = (v) => PAD_T + plotH - (v / top) * plotH;
  const step = plotW / Math.max(1, points.length);
  for (const frac of [0, 0.5, 1]) {
    root.append(svg("line", { x1: PAD_L, x2: W - 4, y1: y(top * frac), y2: y(top * frac), stroke: "#d0d7de" }));
    root.append(svg("text", { x: PAD_L - 4, y: y(top * frac) + 4, "text-anchor": "end", "font-size": 11, fill: "#57606a" },
      Math.round(top * frac)));
  }
  const every = Math.max(1, Math.ceil(points.length / 6));
  points.forEach((p, i) => {
    if (i % every === 0) {
      root.append(svg("text", { x: PAD_L + i * step + step / 2, y: H - 6, "text-anchor": "middle", "font-size": 11, fill: "#57606a" }, label(p.at)));
    }
  });
  if (style === "bars") {
    points.forEach((p, i) => {
      let base = 0;
      for (const l of lines) {
        const v = l.value(p) || 0;
        if (!v) continue;
        const rect = svg("rect", { x: PAD_L + i * step + 1, width: Math.max(1, step - 2), y: y(base + v), height: y(base) - y(base + v), fill: l.color });
        rect.append(svg("title", {}, label(p.at) + " " + l.name + ": " + v));
        root.append(rect);
        base += v;
      }
    });
  } else {
    for (const l of lines) {
      const coords = points.map((p, i) => [PAD_L + i * step + step / 2, l.value(p)]).filter(([, v]) => v !== null && v !== undefined);
      if (coords.length > 1) {
        root.append(svg("polyline", { points: coords.map(([x, v]) => x + "," + y(v)).join(" "), fill: "none", stroke: l.color, "stroke-width": 2 }));
      }
      for (const [x, v] of coords) {
        const dot = svg("circle", { cx: x, cy: y(v), r: 3, fill: l.color });
        dot.append(svg("title", {}, l.name + ": " + Math.round(v) + " ms"));
        root.append(dot);
      }
    }
  }
  const total = (l) => points.reduce((sum, p) => sum + (l.value(p) || 0), 0);
  const legend = el("div", { class: "legend" }, lines.map((l) => el("span", {}, el("i", { style: "background:" + l.color }),
    style === "bars" ? l.name + " " + total(l) : l.name)));
  return el("figure", { class: "chart", "data-chart": style }, el("figcaption", {}, title), root, legend);
}
