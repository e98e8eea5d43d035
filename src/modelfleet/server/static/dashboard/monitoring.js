// Model monitors on the dashboard: for each schedule, one chart per (signal, metric) with each
// feature's value over the monitor's runs and the threshold as a dashed line, and the latest
// result per feature with pass or fail. Data: /api/monitoring. Uses dashboard.js's api, el and
// lineChart.
const MONITORS_EVERY_MS = 10000;

function startMonitors() {
  const refresh = guarded(refreshMonitors);
  refresh();
  return setInterval(refresh, MONITORS_EVERY_MS);
}

async function refreshMonitors() {
  const { schedules } = await api("/api/monitoring");
  $("#monitors-card").hidden = !schedules.length;
  $("#monitors").replaceChildren(...schedules.map(drawMonitor));
  for (const s of schedules) for (const [key, chart] of Object.entries(monitorCharts(s))) {
    const canvas = document.querySelector(`canvas[data-chart="${CSS.escape(s.name + "/" + key)}"]`);
    if (canvas) drawMonitorChart(canvas, s.runs, chart);
  }
}

function monitorCharts(schedule) {
  // {"signal/metric": {signal, metric, threshold, features: [...]}} over every run
  const charts = {};
  for (const run of schedule.runs) for (const r of run.results) {
    const c = charts[`${r.signal}/${r.metric}`] ||= { signal: r.signal, metric: r.metric, threshold: r.threshold, features: [] };
    if (!c.features.includes(r.feature)) c.features.push(r.feature);
  }
  return charts;
}

function drawMonitor(schedule) {
  const last = schedule.runs[schedule.runs.length - 1];
  const head = el("h3", {}, schedule.name, " ", el("span", { class: `badge ${last ? last.status : ""}` },
    last ? last.status : "no run yet"), " ", el("span", { class: "muted" },
    last ? `${schedule.runs.length} run(s), latest ${new Date(last.started_at).toLocaleString()}` : ""));
  const charts = Object.entries(monitorCharts(schedule)).map(([key, c]) => el("figure", {},
    el("figcaption", {}, `${c.signal}: ${c.metric} (threshold ${c.threshold})`),
    el("canvas", { "data-chart": `${schedule.name}/${key}`, "data-testid": "monitor-chart" })));
  const rows = (last ? last.results : []).map((r) => el("tr", {}, cell(r.signal), cell(r.feature), cell(r.metric),
    num(r.value, 4), num(r.threshold, 4),
    cell(r.passed === null ? "n/a" : (r.passed ? "pass" : "fail"), r.passed === false ? "s5" : "s2")));
  const table = el("table", { "data-testid": "monitor-results" },
    el("thead", {}, el("tr", {}, ...["signal", "feature", "metric", "value", "threshold", "result"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
  return el("div", { class: "monitor", "data-schedule": schedule.name }, head, el("div", { class: "charts" }, ...charts), table);
}

function drawMonitorChart(canvas, runs, chart) {
  const lines = chart.features.map((feature, i) => ({
    name: feature, color: COLORS[i % COLORS.length],
    values: runs.map((run) => {
      const r = run.results.find((x) => x.signal === chart.signal && x.metric === chart.metric && x.feature === feature);
      return r && r.value !== null ? r.value : null;
    }),
  }));
  lines.push({ name: "threshold", color: "#6b7385", dash: [4, 4], values: runs.map(() => chart.threshold) });
  lineChart(canvas, lines, { first: `run 1`, last: `run ${runs.length}`, empty: "no run yet" });
  canvas.dataset.features = chart.features.join(",");
  canvas.dataset.points = String(runs.length);
}
