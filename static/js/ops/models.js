// The Models page: the catalogue with live state, the hot slots, the Ollama server's controls and the configuration mode.
import { api } from "../api.js";
import { byId, bytes, missing, pill, poll, row, setText, showStatus, when } from "./common.js";

const REFRESH_MS = 5000;
const FOREVER_YEAR = 2300; // Ollama reports keep_alive -1 as an expiry centuries away
const SERVER_STATES = { running: "good", stopped: "bad", external: "unknown", unmanaged: "unknown" };

let slots = [];
let modes = {};

function button(label, name, onClick, { primary = false } = {}) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  element.setAttribute("aria-label", `${label} ${name}`);
  if (primary) element.className = "primary";
  element.addEventListener("click", onClick);
  return element;
}

function actions(...buttons) {
  const span = document.createElement("span");
  span.className = "row-actions";
  span.append(...buttons.filter(Boolean));
  return span;
}

function dot(loaded) {
  const span = document.createElement("span");
  span.className = "dot";
  span.dataset.state = loaded ? "loaded" : "idle";
  const label = document.createElement("span");
  label.className = "visually-hidden";
  label.textContent = loaded ? "loaded" : "not loaded";
  const cell = document.createElement("span");
  cell.append(span, label);
  return cell;
}

function countdownText(iso) {
  if (!iso) return missing;
  const at = new Date(iso);
  if (at.getUTCFullYear() >= FOREVER_YEAR) return "never";
  const seconds = Math.max(0, Math.round((at - Date.now()) / 1000));
  return `in ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

function countdown(iso) {
  const span = document.createElement("span");
  span.className = "countdown";
  if (iso) span.dataset.expires = iso;
  span.textContent = countdownText(iso);
  return span;
}

function tick() {
  for (const span of document.querySelectorAll(".countdown[data-expires]")) {
    span.textContent = countdownText(span.dataset.expires);
  }
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return missing;
  const whole = Math.floor(seconds);
  if (whole < 60) return `${whole} s`;
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${whole % 60} s`;
  return `${Math.floor(whole / 3600)} h ${Math.floor((whole % 3600) / 60)} min`;
}

// Runs one change, says how it went, and shows the new state at once.
async function act(task, done) {
  const busy = [...document.querySelectorAll(".ops-main button:not(:disabled)")];
  for (const element of busy) element.disabled = true;
  showStatus("Working…");
  try {
    const result = await task();
    showStatus(typeof done === "function" ? done(result) : done);
  } catch (error) {
    showStatus(error.message, { error: true });
  } finally {
    for (const element of busy) element.disabled = false;
    await refresh().catch(() => {});
  }
}

function pin(model) {
  const free = slots.find((slot) => slot.model === null);
  if (!free) {
    showStatus("All four hot slots are full: remove a model from one first.", { error: true });
    return;
  }
  act(() => api(`chat/models/hot-slots/${free.slot}`, { method: "POST", body: { model } }),
    `${model} is in hot slot ${free.slot} and stays loaded.`);
}

async function refreshCatalogue() {
  const [listing, status] = await Promise.all([api("chat/models"), api("chat/models/status")]);
  const models = listing.results;
  byId("catalogue-empty").hidden = models.length > 0;
  byId("catalogue-body").replaceChildren(...models.map((model) => {
    const name = model.qualified_name;
    const chat = model.capabilities.includes("chat") && model.provider !== "openai";
    return row([
      dot(model.loaded), name, model.server, bytes(model.size), String(model.context_length),
      model.loaded ? bytes(model.memory_bytes) : missing, countdown(model.expires_at),
      actions(
        chat && button("Warm", name, () => act(() => api("chat/models/preload", { method: "POST", body: { model: name } }),
          (result) => `${name} is loaded (${Math.round(result.elapsed_ms)} ms).`)),
        model.loaded && model.hot_slot === null && button("Evict", name, () => act(
          () => api(`chat/models/unload/${name.split("/").map(encodeURIComponent).join("/")}`, { method: "POST" }), `${name} is unloaded.`)),
        chat && model.hot_slot === null && button("Pin", name, () => pin(name)),
      ),
    ]);
  }));
  setText("memory-use", `${bytes(status.memory.used_bytes)} loaded of a ${bytes(status.memory.budget_bytes)} budget`);
}

async function refreshSlots() {
  slots = await api("chat/models/hot-slots");
  byId("slots-body").replaceChildren(...slots.map((slot) => row([
    String(slot.slot), slot.model ?? "empty", slot.model ? dot(slot.loaded) : missing,
    slot.model && slot.loaded ? bytes(slot.memory_bytes) : missing,
    slot.model ? actions(button("Remove", `from hot slot ${slot.slot}`, () => act(
      () => api(`chat/models/hot-slots/${slot.slot}`, { method: "DELETE" }),
      `Hot slot ${slot.slot} is empty; ${slot.model} unloads when its keep-alive runs out.`))) : "",
  ])));
}

async function refreshServer() {
  const server = await api("chat/ollama/server/status");
  pill("server-state", server.state, SERVER_STATES[server.state] ?? "unknown");
  setText("server-message", server.message);
  setText("server-name", server.server ? `${server.server} (${server.url})` : missing);
  setText("server-version", server.version ?? missing);
  setText("server-uptime", duration(server.uptime_seconds));
  setText("server-pid", server.pid ? `pid ${server.pid}` : missing);
  const exit = server.last_exit;
  setText("server-exit", exit ? `${exit.reason}, code ${exit.code ?? "unknown"}${exit.killed ? " (killed)" : ""}, ${when(exit.at)}` : missing);
  byId("server-start").disabled = !server.managed || server.state !== "stopped";
  byId("server-stop").disabled = !server.managed || server.state !== "running";
  byId("server-restart").disabled = !server.managed || server.state === "external";
  byId("servers-body").replaceChildren(...server.servers.map((item) => row([
    item.server + (item.managed ? " (managed)" : ""), item.url ?? missing,
    item.reachable ? "reachable" : `unreachable: ${item.error}`, item.version ?? missing,
  ])));
  byId("server-log-box").hidden = server.log_tail.length === 0;
  setText("server-log", server.log_tail.join("\n"));
}

function describeMode() {
  const chosen = modes[byId("mode-select").value];
  setText("mode-description", chosen ? chosen.description : "");
}

async function refreshMode() {
  const config = await api("chat/ollama/config");
  modes = config.modes;
  pill("mode-current", config.mode ?? "environment", config.mode ? "good" : "unknown");
  if (document.activeElement !== byId("mode-select")) byId("mode-select").value = config.mode ?? "balanced";
  describeMode();
  setText("mode-keep-alive", config.per_request.keep_alive ?? "the server's default");
  setText("mode-num-ctx", `${config.per_request.num_ctx} tokens`);
  const environment = Object.entries(config.server_environment).map(([key, value]) => `${key}=${value}`);
  setText("mode-environment", environment.length ? environment.join("\n") : "none");
  setText("mode-applies", config.server.message);
  setText("mode-detection", config.detection ? config.detection.explanation : "not run yet");
}

function refresh() {
  return Promise.all([refreshCatalogue(), refreshSlots(), refreshServer(), refreshMode()]);
}

function control(action, question) {
  if (question && !window.confirm(question)) return;
  act(() => api(`chat/ollama/server/${action}`, { method: "POST", body: {} }),
    (result) => `Ollama server ${result.action}: now ${result.status.state}.`);
}

byId("server-start").addEventListener("click", () => control("start"));
byId("server-stop").addEventListener("click", () => control("shutdown", "Stop the Ollama server? Replies running on it fail."));
byId("server-restart").addEventListener("click", () => control("restart", "Restart the Ollama server? Replies running on it fail; hot-slotted models are loaded again."));
byId("mode-select").addEventListener("change", describeMode);
byId("mode-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const mode = byId("mode-select").value;
  act(() => api("chat/ollama/config/mode", { method: "POST", body: { mode } }),
    (result) => `Mode set to ${result.mode}. ${result.server.message}`);
});
byId("mode-detect").addEventListener("click", () => act(
  () => api("chat/ollama/config/auto-detect", { method: "POST", body: {} }),
  (result) => `Auto-detect picked ${result.detection.mode}. ${result.detection.explanation}`));

poll(refresh, REFRESH_MS);
setInterval(tick, 1000);
