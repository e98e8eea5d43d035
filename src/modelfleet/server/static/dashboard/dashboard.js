// The modelfleet dashboard: plain JavaScript, no build step, no network but this server.
// It reads the control API with an API token (kept in this tab's sessionStorage only) and
// draws its charts on canvases from /api/stats's per-second series.
"use strict";

const COLORS = ["#2f6fde", "#1f9d55", "#d0342c", "#c27c0e", "#8e44ad", "#16a2b8", "#e4578b", "#6b7385"];
const STATS_EVERY_MS = 2000, STATE_EVERY_MS = 5000, MODELS_EVERY_MS = 30000;
const $ = (sel) => document.querySelector(sel);

// the workspace's prefix (/workspaces/NAME on a server hosting several), "" for the server's own
const BASE = location.pathname.replace(/\/dashboard(\/.*)?$/, "");
let token = sessionStorage.getItem("modelfleet-token") || "";
let focus = "";          // "" = all endpoints, else one endpoint's deployments
let timers = [];
let endpoints = [], deployments = [], lastStats = null;

// -- talking to the server ----------------------------------------------------------------------

class AuthError extends Error {}

async function api(path) {
  const r = await fetch(BASE + path, { headers: { authorization: `Bearer ${token}` }, cache: "no-store" });
  if (r.status === 401) throw new AuthError("invalid token");
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "style") e.style.cssText = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

const fmt = (v, digits = 1) => (v === null || v === undefined) ? "–" : Number(v).toFixed(digits);
const cell = (v, cls = "") => el("td", cls ? { class: cls } : {}, v);
const num = (v, digits = 1) => cell(fmt(v, digits), "num");
const badge = (text, cls = text) => el("span", { class: `badge ${cls}` }, text);

// A deployment's replicas as the server counts them (replica_states.py): ready of wanted, then
// the rest where there are any: busy (among the ready), starting, draining, failed.
const detail = (n) => Object.entries(n).filter(([k, v]) => v && k !== "ready" && k !== "wanted");

function replicaBadges(n) {
  return [badge(`${n.ready} ready`, n.ready < n.wanted ? "short" : "ready"), el("span", { class: "muted" }, ` of ${n.wanted} `),
    ...detail(n).map(([k, v]) => badge(`${v} ${k}`, k))];
}

// the same figures from a deployment's own view (`ready_replicas`, `wanted_replicas`, ...)
const ownCounts = (dep) => Object.fromEntries(Object.entries(dep).filter(([k]) => k.endsWith("_replicas"))
  .map(([k, v]) => [k.slice(0, -"_replicas".length), v]));

function fillTable(id, rows) {
  const body = $(`#${id} tbody`);
  body.replaceChildren(...rows);
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: 20, class: "muted" }, "(none)")));
}

// -- sign in and out ----------------------------------------------------------------------------

function showLogin(message = "") {
  timers.forEach(clearInterval);
  timers = [];
  $("#app").hidden = true;
  $("#signout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message;
  $("#token").focus();
}

async function signIn(candidate) {
  token = candidate;
  try {
    const health = await api("/api/health");
    sessionStorage.setItem("modelfleet-token", token);
    $("#workspace").textContent = `workspace ${health.workspace} · v${health.version}`;
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("#signout").hidden = false;
    start();
  } catch (e) {
    sessionStorage.removeItem("modelfleet-token");
    showLogin(e instanceof AuthError ? "That token was not accepted." : `Cannot reach the server: ${e.message}`);
  }
}

$("#login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  signIn($("#token").value.trim());
});
$("#signout").addEventListener("click", () => {
  sessionStorage.removeItem("modelfleet-token");
  token = "";
  showLogin();
});
$("#focus").addEventListener("change", (ev) => {
  focus = ev.target.value;
  if (lastStats) drawCharts(lastStats);
});

function guarded(fn) {
  return async () => {
    try {
      await fn();
      $("#status").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (e instanceof AuthError) return showLogin("The token is no longer accepted (revoked, or the server restarted?): sign in again.");
      $("#status").textContent = `offline: ${e.message}`;
    }
  };
}

function start() {
  const stats = guarded(refreshStats), state = guarded(refreshState), models = guarded(refreshModels);
  state().then(stats);
  models();
  timers = [setInterval(stats, STATS_EVERY_MS), setInterval(state, STATE_EVERY_MS), setInterval(models, MODELS_EVERY_MS),
            startMonitors()];   // monitoring.js
}

// -- what the fleet is --------------------------------------------------------------------------

async function refreshState() {
  [endpoints, deployments] = await Promise.all([api("/api/endpoints"), api("/api/deployments")]);
  const select = $("#focus");
  const names = endpoints.map((e) => e.name);
  const have = [...select.options].slice(1).map((o) => o.value);
  if (names.join() !== have.join()) {
    select.replaceChildren(el("option", { value: "" }, "all endpoints"), ...names.map((n) => el("option", { value: n }, n)));
    select.value = names.includes(focus) ? focus : "";
  }
}

async function refreshModels() {
  const models = await api("/api/models");
  fillTable("models", models.map((m) => el("tr", {},
    cell(m.name), cell(m.version), cell(m.type), cell((m.labels || []).join(", ")),
    cell(bytes(m.size), "num"), cell((m.created_at || "").replace("T", " ").slice(0, 19)))));
}

function bytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// -- live figures -------------------------------------------------------------------------------

async function refreshStats() {
  const [stats, requests, events] = await Promise.all([
    api(`/api/stats?series=120&top=8${focus ? `&endpoint=${encodeURIComponent(focus)}` : ""}`),
    api("/api/requests?n=25"), api("/api/events?n=25")]);
  lastStats = stats;
  drawTiles(stats);
  drawEndpoints(stats);
  drawDeployments(stats);
  drawRollouts(stats);
  drawCharts(stats);
  fillTable("requests", requests.reverse().map((r) => el("tr", {},
    cell(r.time.slice(11, 23)), cell(r.endpoint), cell(r.deployment), cell(r.replica),
    cell(String(r.status), `s${String(r.status)[0]}`), num(r.latency_ms, 2), cell(r.request_id))));
  // a replica's id names its deployment, not its endpoint: the endpoint goes first
  fillTable("events", events.reverse().map((e) => el("tr", {}, cell(e.time.slice(11, 23)),
    cell(e.endpoint ? `${e.endpoint}/${e.message}` : e.message))));
}

function drawTiles(stats) {
  let rps = 0, errors = 0, requests = 0, p99 = null;
  const n = { ready: 0, wanted: 0 };
  for (const e of stats.endpoints) {
    rps += e.live.requests_per_second; errors += e.live.errors; requests += e.live.requests;
    if (e.live.p99_ms !== null) p99 = Math.max(p99 ?? 0, e.live.p99_ms);
    for (const d of e.deployments) for (const [k, v] of Object.entries(d.replicas)) n[k] = (n[k] || 0) + v;
  }
  const tile = (k, v, id, detail = "") => el("div", { class: "tile", "data-testid": id },
    el("div", { class: "v" }, v), el("div", { class: "k" }, k), el("div", { class: "d" }, detail));
  $("#tiles").replaceChildren(
    tile("endpoints", String(endpoints.length), "tile-endpoints"),
    tile("deployments", String(deployments.length), "tile-deployments"),
    tile("replicas ready / wanted", `${n.ready} / ${n.wanted}`, "tile-replicas",
      detail(n).map(([k, v]) => `${v} ${k}`).join(" · ")),
    tile("requests / s (1 min)", fmt(rps, 2), "tile-rps"),
    tile("worst p99 (ms)", fmt(p99, 1), "tile-p99"),
    tile("error rate (1 min)", requests ? `${(100 * errors / requests).toFixed(2)} %` : "–", "tile-errors"));
}

function drawEndpoints(stats) {
  const live = Object.fromEntries(stats.endpoints.map((e) => [e.name, e]));
  fillTable("endpoints", endpoints.map((ep) => {
    const s = live[ep.name];
    const traffic = Object.entries(ep.traffic).map(([d, p]) => `${d}=${p}`).join(" ") || "–";
    return el("tr", { "data-endpoint": ep.name }, cell(ep.name), cell(ep.auth_mode), cell(traffic),
      num(s?.live.requests_per_second, 2), num(s?.live.p50_ms, 2), num(s?.live.p99_ms, 2),
      cell(String(s?.live.errors ?? 0), "num"), cell(String(s?.inflight ?? 0), "num"), cell(String(s?.queued ?? 0), "num"),
      cell(ep.scoring_uri));
  }));
}

function drawDeployments(stats) {
  const live = {};
  for (const e of stats.endpoints) for (const d of e.deployments) live[`${e.name}/${d.name}`] = d;
  fillTable("deployments", deployments.map((dep) => {
    const s = live[`${dep.endpoint_name}/${dep.name}`];
    const n = s ? s.replicas : ownCounts(dep);   // a deployment the stats do not name yet (just created)
    const state = s?.updating && dep.provisioning_state === "Succeeded" ? "Updating" : dep.provisioning_state;
    const replicas = el("td", { class: "replicas", "data-ready": n.ready, "data-wanted": n.wanted }, ...replicaBadges(n));
    return el("tr", { "data-deployment": `${dep.endpoint_name}/${dep.name}` },
      cell(dep.endpoint_name), cell(dep.name), cell(dep.model), el("td", {}, badge(state)), replicas,
      num(s?.live.requests_per_second, 2), num(s?.live.p99_ms, 2), cell(String(s?.live.errors ?? 0), "num"));
  }));
}

function drawRollouts(stats) {
  const box = $("#rollouts");
  const failed = deployments.filter((d) => d.provisioning_state === "Failed");
  if (!stats.rollouts.length && !failed.length) {
    box.replaceChildren(el("p", { class: "none" }, "No rollout in progress."));
    return;
  }
  box.replaceChildren(
    ...stats.rollouts.map((r) => {
      const dep = deployments.find((d) => d.endpoint_name === r.endpoint && d.name === r.deployment);
      return el("p", {}, badge("Updating"), `${r.endpoint}/${r.deployment} → ${dep ? dep.model : "?"}  `,
        ...replicaBadges(r.replicas));
    }),
    ...failed.map((d) => el("p", {}, badge("Failed"), `${d.endpoint_name}/${d.name}: ${(d.error || "").split("\n")[0]}`)));
}

// -- charts -------------------------------------------------------------------------------------

function drawCharts(stats) {
  const series = stats.series || {};
  let names;
  if (focus) {
    names = Object.keys(series).filter((k) => k.startsWith(`${focus}/`));
    $("#chart-scope").textContent = `deployments of ${focus}, last 2 minutes`;
  } else {
    names = Object.keys(series).filter((k) => !k.includes("/"));
    $("#chart-scope").textContent = "per endpoint, last 2 minutes";
  }
  const lines = names.map((name, i) => ({ name, color: COLORS[i % COLORS.length], s: series[name] }));
  lineChart($("#chart-rps"), lines.map((l) => ({ ...l, values: l.s.rps })));
  lineChart($("#chart-latency"), lines.map((l) => ({ ...l, values: l.s.p99_ms })));
  lineChart($("#chart-errors"), lines.map((l) => ({ ...l, values: l.s.errors })));
  $("#legend").replaceChildren(...lines.map((l) => el("span", { style: `--c:${l.color}` }, focus ? l.name.split("/")[1] : l.name)));
}

function lineChart(canvas, lines, axis = null) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * dpr;
  canvas.height = h * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const pad = { l: 44, r: 10, t: 10, b: 20 };
  const n = lines.length ? lines[0].values.length : 120;
  let max = 0, last = 0;
  for (const l of lines) for (const v of l.values) if (v !== null && v > max) max = v;
  for (const l of lines) last += l.values.length ? (l.values[l.values.length - 1] || 0) : 0;
  const top = niceCeil(max || 1);
  canvas.dataset.max = String(max);     // what the chart shows, for tests and the curious
  canvas.dataset.last = String(last);
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#6b7385";
  g.strokeStyle = "#e3e6ec";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + (h - pad.t - pad.b) * (1 - i / 4);
    g.beginPath(); g.moveTo(pad.l, y); g.lineTo(w - pad.r, y); g.stroke();
    g.fillText(shortNumber(top * i / 4), 4, y + 4);
  }
  g.fillText(axis ? axis.first : `-${n}s`, pad.l, h - 5);
  g.fillText(axis ? axis.last : "now", w - pad.r - (axis ? 40 : 22), h - 5);
  const x = (i) => pad.l + (w - pad.l - pad.r) * (n <= 1 ? 1 : i / (n - 1));
  const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - v / top);
  for (const l of lines) {
    g.strokeStyle = l.color;
    g.lineWidth = 1.8;
    g.setLineDash(l.dash || []);
    g.beginPath();
    let drawing = false;
    l.values.forEach((v, i) => {
      if (v === null) { drawing = false; return; }
      if (drawing) g.lineTo(x(i), y(v)); else { g.moveTo(x(i), y(v)); drawing = true; }
    });
    g.stroke();
  }
  if (!lines.length) {
    g.fillStyle = "#6b7385";
    g.fillText(axis ? axis.empty : "no traffic yet", w / 2 - 30, h / 2);
  }
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function shortNumber(v) {
  if (v >= 1000) return `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k`;
  return v >= 10 ? v.toFixed(0) : v.toFixed(v >= 1 ? 1 : 2);
}

// -- start --------------------------------------------------------------------------------------

const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromLink) {
  history.replaceState(null, "", location.pathname);  // the token must not stay in the address bar
  signIn(fromLink);
} else if (token) {
  signIn(token);
} else {
  showLogin();
}
