// The system page: host memory and CPU, thermal, health and readiness, refreshed every few seconds.
import { api, request } from "../api.js";
import { byId, bytes, celsius, missing, percent, pill, poll, row, setBanner, setText } from "./common.js";

const REFRESH_MS = 5000;

function meter(id, value) {
  byId(id).value = value ?? 0;
}

async function refreshHost() {
  const current = await api("chat/performance/current");
  const host = current.system;
  if (!host) return;
  // The sample holds used bytes and the percentage of the total they are, so the total follows from both.
  const total = host.memory_percent > 0 ? (host.memory_used_bytes * 100) / host.memory_percent : null;
  setText("memory-text", total
    ? `${bytes(host.memory_used_bytes)} used of ${bytes(total)} (${percent(host.memory_percent, 1)})`
    : `${bytes(host.memory_used_bytes)} used (${percent(host.memory_percent, 1)})`);
  meter("memory-meter", host.memory_percent);
  setText("cpu-text", percent(host.cpu_percent, 1));
  meter("cpu-meter", host.cpu_percent);
  setText("load-text", host.load_1m === null ? "not available" : host.load_1m.toFixed(2));
  setText("hottest-text", host.max_temperature_c === null ? "not available" : celsius(host.max_temperature_c));
  setText("host-sampled", `sampled ${new Date(host.created_at).toLocaleTimeString()}`);
}

async function refreshThermal() {
  const thermal = await api("chat/performance/thermal");
  pill("throttling", thermal.available ? `Throttling ${thermal.throttling}` : "Not available",
    thermal.throttling === "likely" ? "bad" : thermal.throttling === "not likely" ? "good" : "unknown");
  setText("thermal-message", thermal.message);
  const frequency = thermal.cpu_frequency;
  if (!frequency) setText("frequency-text", "not available");
  else if (!frequency.max_mhz) setText("frequency-text", `${Math.round(frequency.current_mhz)} MHz (maximum not reported)`);
  else setText("frequency-text", `${Math.round(frequency.current_mhz)} MHz of ${Math.round(frequency.max_mhz)} MHz`
    + ` (${percent(frequency.ratio_of_max * 100)})`);
  byId("sensors-table").hidden = thermal.sensors.length === 0;
  byId("sensors-body").replaceChildren(...thermal.sensors.map((sensor) => row([
    sensor.chip, sensor.label, celsius(sensor.current_c), celsius(sensor.high_c), celsius(sensor.critical_c),
  ])));
}

async function refreshHealth() {
  const health = await api("chat/health");
  pill("health-status", health.status === "ok" ? "OK" : "Degraded", health.status === "ok" ? "good" : "bad");
  setText("health-version", health.version);
  setText("health-streams", String(health.active_streams));
  setText("health-panic", health.panic ? "ON" : "off");
  setBanner(health.panic);
  byId("providers-body").replaceChildren(...health.providers.map((provider) => row([
    provider.name, provider.ok ? "answering" : "failing", String(provider.models), provider.error || missing,
  ])));
}

async function refreshReadiness() {
  // /readyz answers 503 with the same body when a check fails: that is a reading, not an error.
  const ready = await request("/readyz", { accept: [503] });
  pill("ready-status", ready.status === "ready" ? "Ready" : "Not ready", ready.status === "ready" ? "good" : "bad");
  byId("checks-body").replaceChildren(...Object.entries(ready.checks).map(([name, check]) => row([
    name.replaceAll("_", " "), check.ok ? "ok" : "failed", check.error || missing,
  ])));
}

poll(() => Promise.all([refreshHost(), refreshThermal(), refreshHealth(), refreshReadiness()]), REFRESH_MS);
