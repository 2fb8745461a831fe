// Rouge's live dashboard: every second, reads the JSON API (/api/v1/stats, virtual,
// pool, class: the same figures as `rouge show ... --json`), keeps the last 60 samples
// and draws them as plain SVG line charts beside tables of the current figures.
// Read-only; no library, no build step.
"use strict";

const HISTORY = 60;
const PALETTE = ["#7a1022", "#1f6feb", "#1a7f37", "#bf8700", "#8250df", "#cf222e",
                 "#0a7ea4", "#6e7781"];
const SVG = "http://www.w3.org/2000/svg";

const state = { prev: null, series: { throughput: {}, connections: {}, classes: {}, cores: {} },
                refreshes: 0 };

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function push(group, name, value) {
  const s = state.series[group][name] || (state.series[group][name] = []);
  s.push(value);
  while (s.length > HISTORY) s.shift();
}

// Drops the series of things that no longer exist (a configuration change).
function prune(group, names) {
  for (const k of Object.keys(state.series[group])) {
    if (!names.includes(k)) delete state.series[group][k];
  }
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmt(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "-";
  return Number(v).toFixed(digits === undefined ? 1 : digits);
}

// A line chart of every series in `group` over the last HISTORY samples.
function drawChart(id, group) {
  const svg = document.getElementById(id);
  const legend = document.getElementById("legend-" + id.replace("chart-", ""));
  const w = svg.clientWidth || 560, h = svg.clientHeight || 170;
  const left = 44, right = 8, top = 8, bottom = 18;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  legend.textContent = "";
  const names = Object.keys(state.series[group]);
  let max = 0;
  for (const n of names) for (const v of state.series[group][n]) if (v > max) max = v;
  max = niceMax(max);
  const x = (i) => left + (w - left - right) * i / (HISTORY - 1);
  const y = (v) => top + (h - top - bottom) * (1 - v / max);
  for (let g = 0; g <= 4; g++) {
    const v = max * g / 4;
    svg.appendChild(svgEl("line", { x1: left, x2: w - right, y1: y(v), y2: y(v),
                                     stroke: "#e3e6eb" }));
    const t = svgEl("text", { x: left - 4, y: y(v) + 3, "text-anchor": "end" });
    t.textContent = max >= 10 ? Math.round(v) : v.toFixed(2);
    svg.appendChild(t);
  }
  const label = svgEl("text", { x: left, y: h - 4 });
  label.textContent = `last ${HISTORY} s`;
  svg.appendChild(label);
  if (names.length === 0) {
    const t = svgEl("text", { x: w / 2, y: h / 2, "text-anchor": "middle" });
    t.textContent = "nothing to show";
    svg.appendChild(t);
    return;
  }
  names.forEach((n, k) => {
    const s = state.series[group][n];
    const offset = HISTORY - s.length;
    const pts = s.map((v, i) => `${x(i + offset).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const color = PALETTE[k % PALETTE.length];
    svg.appendChild(svgEl("polyline", { points: pts, fill: "none", stroke: color,
                                         "stroke-width": 1.8, "data-series": n }));
    const item = el("span");
    const swatch = el("i");
    swatch.style.background = color;
    item.appendChild(swatch);
    item.appendChild(document.createTextNode(n));
    legend.appendChild(item);
  });
}

// A table row; cells are [text, id, className].
function row(cells) {
  const tr = el("tr");
  for (const [text, id, cls] of cells) {
    const td = el("td", id ? { id } : {});
    if (cls === "badge") {
      td.appendChild(el("span", { class: "badge " + text }, text));
    } else {
      if (cls) td.className = cls;
      td.textContent = text;
    }
    tr.appendChild(td);
  }
  return tr;
}

function fill(id, rows, empty, columns) {
  const body = document.getElementById(id);
  body.textContent = "";
  if (rows.length === 0) {
    const tr = el("tr");
    tr.appendChild(el("td", { colspan: columns, class: "empty" }, empty));
    body.appendChild(tr);
  }
  for (const r of rows) body.appendChild(r);
}

function render(stats, virtuals, pools, classes) {
  // Rates are taken over the appliance's own clock (its uptime), not the browser's.
  const now = stats.uptime_secs_exact;
  const prev = state.prev;
  const dt = prev ? now - prev.now : 0;
  const rate = (key, value) => {
    if (!prev || !(dt > 0) || prev.values[key] === undefined) return null;
    return Math.max(0, value - prev.values[key]) / dt;
  };
  const values = {};

  document.getElementById("uptime").textContent = stats.uptime_secs + " s";
  document.getElementById("generation").textContent = stats.generation;
  document.getElementById("workers").textContent = stats.workers.length;

  const vrows = [];
  for (const v of virtuals) {
    values["vb:" + v.name] = v.bytes;
    const bps = rate("vb:" + v.name, v.bytes);
    const mbit = bps === null ? null : bps * 8 / 1e6;
    push("throughput", v.name, mbit || 0);
    if (v.current_connections !== undefined) push("connections", v.name, v.current_connections);
    const id = (f) => `v-${v.name}-${f}`;
    vrows.push(row([[v.name, id("name")], [v.type], [v.destination], [v.pool || "-"],
      [fmt(mbit, 2), id("mbit"), "n"],
      [v.current_connections === undefined ? "-" : String(v.current_connections),
       id("current_connections"), "n"],
      [v.connections === undefined ? "-" : String(v.connections), id("connections"), "n"],
      [String(v.bytes), id("bytes"), "n"]]));
  }
  prune("throughput", virtuals.map((v) => v.name));
  prune("connections", virtuals.filter((v) => v.current_connections !== undefined)
    .map((v) => v.name));
  fill("virtual-rows", vrows, "no virtual servers", 8);

  const mrows = [];
  for (const p of pools) {
    for (const m of p.members) {
      const id = (f) => `m-${p.name}-${m.address}-${f}`;
      mrows.push(row([[p.name], [m.address], [m.admin, id("admin"), "badge"],
        [m.monitor, id("monitor"), "badge"], [m.availability, id("availability"), "badge"],
        [String(m.current_connections), id("current_connections"), "n"],
        [String(m.total_connections), id("total_connections"), "n"],
        [String(m.bytes), id("bytes"), "n"]]));
    }
  }
  fill("member-rows", mrows, "no pools", 8);

  const crows = [];
  for (const c of classes) {
    const mbit = c.rate_bps / 1e6;
    push("classes", c.name, mbit);
    const id = (f) => `c-${c.name}-${f}`;
    crows.push(row([[c.name, id("name")], [fmt(mbit, 2), id("mbit"), "n"],
      [String(c.queue_packets), id("queue_packets"), "n"], [String(c.drops), id("drops"), "n"],
      [fmt(c.delay_us.p50, 0), id("p50"), "n"], [fmt(c.delay_us.p99, 0), id("p99"), "n"]]));
  }
  prune("classes", classes.map((c) => c.name));
  fill("class-rows", crows, "shaping is off (no interface has a shaping_rate)", 6);

  const wrows = [];
  for (const w of stats.workers) {
    const name = `worker ${w.id}`;
    let busy = null;
    if (w.cpu_secs !== null && w.cpu_secs !== undefined) {
      values["cpu:" + w.id] = w.cpu_secs;
      const r = rate("cpu:" + w.id, w.cpu_secs);
      busy = r === null ? null : Math.min(100, r * 100);
    }
    push("cores", name, busy || 0);
    const id = (f) => `w-${w.id}-${f}`;
    wrows.push(row([[String(w.id), id("id")], [w.core === null ? "-" : String(w.core)],
      [fmt(busy, 1), id("busy"), "n"], [String(w.rx_packets), id("rx_packets"), "n"],
      [String(w.loop_turns), id("loop_turns"), "n"], [String(w.idle_turns), id("idle_turns"), "n"]]));
  }
  prune("cores", stats.workers.map((w) => `worker ${w.id}`));
  fill("core-rows", wrows, "no workers", 6);

  drawChart("chart-throughput", "throughput");
  drawChart("chart-connections", "connections");
  drawChart("chart-classes", "classes");
  drawChart("chart-cores", "cores");
  state.prev = { now, values };
}

async function getJson(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

async function refresh() {
  try {
    const [stats, virtuals, pools, classes] = await Promise.all([
      getJson("/api/v1/stats"), getJson("/api/v1/virtual"), getJson("/api/v1/pool"),
      getJson("/api/v1/class")]);
    render(stats, virtuals, pools, classes);
    state.refreshes += 1;
    document.body.dataset.refreshes = String(state.refreshes);
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = "(" + e.message + ")";
  }
}

refresh();
setInterval(refresh, 1000);
