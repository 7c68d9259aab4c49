// The performance page: live last-minute figures, charts per model over time (uPlot), a stats table, reset.
import uPlot from "../../vendor/uPlot.esm.js";
import { api } from "../api.js";
import { byId, clock, ms, percent, poll, rate, row, setText, showStatus } from "./common.js";

const LIVE_MS = 5000;
const SLOW_MS = 60000;
const CHART_HEIGHT = 260;
// Line colours readable on each theme's background, one per model in order.
const PALETTES = {
  light: ["#0b57d0", "#c5221f", "#137333", "#a142f4", "#b06000", "#007b83", "#d01884", "#5f6368"],
  dark: ["#8ab4f8", "#f28b82", "#81c995", "#d7aefb", "#fdd663", "#78d9ec", "#ff8bcb", "#bdc1c6"],
};

const charts = { ttft: null, tps: null };
let history = null;

// ---------------------------------------------------------------- live

async function refreshLive() {
  const now = await api("chat/performance/current");
  setText("live-replies", String(now.replies));
  setText("live-active", String(now.active_streams));
  setText("live-ttft", ms(now.mean_ttft_ms));
  setText("live-tps", rate(now.mean_tokens_per_second));
  setText("live-errors", String(now.errors));
  setText("live-tokens", String(now.completion_tokens));
  setText("live-updated", `updated ${clock()}`);
}

// ---------------------------------------------------------------- charts

function themeColours() {
  const style = getComputedStyle(document.documentElement);
  const dark = document.documentElement.dataset.theme === "dark";
  return {
    text: style.getPropertyValue("--muted").trim(),
    grid: style.getPropertyValue("--border").trim(),
    palette: dark ? PALETTES.dark : PALETTES.light,
  };
}

function chartWidth(container) {
  return Math.max(280, container.clientWidth);
}

function alignedSeries(data, field) {
  const starts = new Set();
  for (const model of data.models) for (const bucket of model.buckets) starts.add(Date.parse(bucket.start) / 1000);
  const xs = [...starts].sort((a, b) => a - b);
  const ys = data.models.map((model) => {
    const byStart = new Map(model.buckets.map((bucket) => [Date.parse(bucket.start) / 1000, bucket[field]]));
    return xs.map((x) => (byStart.has(x) ? byStart.get(x) : null));
  });
  return [xs, ...ys];
}

function drawChart(key, containerId, field, unit) {
  const container = byId(containerId);
  if (charts[key]) { charts[key].destroy(); charts[key] = null; }
  if (!history || !history.models.length) return;
  const colours = themeColours();
  const since = Date.parse(history.since) / 1000;
  const axis = { stroke: colours.text, grid: { stroke: colours.grid, width: 1 }, ticks: { stroke: colours.grid, width: 1 } };
  const options = {
    width: chartWidth(container),
    height: CHART_HEIGHT,
    scales: { x: { time: true, range: () => [since, Date.now() / 1000] } },
    series: [
      { label: "Time" },
      ...history.models.map((model, index) => ({
        label: `${model.model} (${model.provider})`,
        stroke: colours.palette[index % colours.palette.length],
        width: 2,
        spanGaps: true,
        points: { show: true, size: 8 },
        value: (u, value) => (value === null || value === undefined ? "–" : `${rate(value)} ${unit}`),
      })),
    ],
    axes: [axis, { ...axis, size: 60, values: (u, splits) => splits.map((value) => `${rate(value)}`) }],
  };
  charts[key] = new uPlot(options, alignedSeries(history, field), container);
}

function drawCharts() {
  byId("history-empty").hidden = Boolean(history && history.models.length);
  drawChart("ttft", "ttft-chart", "mean_ttft_ms", "ms");
  drawChart("tps", "tps-chart", "mean_tokens_per_second", "tok/s");
}

async function refreshHistory() {
  const days = Number(byId("history-days").value);
  history = await api(`chat/performance/history?days=${days}&bucket=${days >= 30 ? "day" : "hour"}`);
  drawCharts();
}

// ---------------------------------------------------------------- stats

async function refreshStats() {
  const stats = await api(`chat/performance/stats?window=${byId("stats-window").value}`);
  const body = byId("stats-body");
  body.replaceChildren(...stats.models.map((model) => row([
    model.model, model.provider, String(model.count), percent(model.error_rate * 100, 1),
    ms(model.ttft_ms_p50), ms(model.ttft_ms_p95), rate(model.tokens_per_second_p50), rate(model.tokens_per_second_p95),
  ])));
  byId("stats-empty").hidden = stats.models.length > 0;
}

// ---------------------------------------------------------------- wiring

const refreshLiveNow = poll(refreshLive, LIVE_MS);
const refreshSlow = poll(() => Promise.all([refreshHistory(), refreshStats()]), SLOW_MS);

byId("history-days").addEventListener("change", () => refreshHistory().catch((error) => showStatus(error.message, { error: true })));
byId("stats-window").addEventListener("change", () => refreshStats().catch((error) => showStatus(error.message, { error: true })));

byId("perf-reset").addEventListener("click", async () => {
  if (!window.confirm("Delete every performance and system sample? The charts and tables start empty again. This cannot be undone.")) return;
  try {
    const result = await api("chat/performance/reset", { method: "POST" });
    showStatus(`Deleted ${result.before.performance_samples} performance samples and ${result.before.system_samples} system samples.`);
    await Promise.all([refreshSlow(), refreshLiveNow()]);
  } catch (error) {
    showStatus(`Reset failed: ${error.message}`, { error: true });
  }
});

// Charts draw with the theme's colours, so a theme switch redraws them; a resize only rescales.
new MutationObserver(drawCharts).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
window.addEventListener("resize", () => {
  for (const [key, id] of [["ttft", "ttft-chart"], ["tps", "tps-chart"]]) {
    if (charts[key]) charts[key].setSize({ width: chartWidth(byId(id)), height: CHART_HEIGHT });
  }
});
