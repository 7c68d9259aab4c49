// What the staff pages share: the theme toggle, a status line, polling, the panic banner and number formats.

export const byId = (id) => document.getElementById(id);

export function setText(id, text) {
  byId(id).textContent = text;
}

export function showStatus(message, { error = false } = {}) {
  const line = byId("ops-status");
  line.textContent = message;
  line.classList.toggle("error", error);
  delete line.dataset.from;
}

export function setBanner(active) {
  byId("panic-banner").hidden = !active;
}

// Runs `task` now and then every `ms`, never twice at once, and skips turns while the tab is hidden.
export function poll(task, ms) {
  let running = false;
  const run = async () => {
    if (running || document.hidden) return;
    running = true;
    try {
      await task();
      if (byId("ops-status").dataset.from === "poll") showStatus("");
    } catch (error) {
      showStatus(`Could not refresh: ${error.message}`, { error: true });
      byId("ops-status").dataset.from = "poll";
    } finally { running = false; }
  };
  run();
  setInterval(run, ms);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) run(); });
  return run;
}

export function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell); else td.textContent = cell;
    tr.append(td);
  }
  return tr;
}

export function pill(id, text, state) {
  const element = byId(id);
  element.textContent = text;
  element.dataset.state = state;
}

const number = (value, digits) => value.toLocaleString(undefined, { maximumFractionDigits: digits });
export const missing = "–";

export function ms(value) {
  if (value === null || value === undefined) return missing;
  return value >= 1000 ? `${number(value / 1000, 2)} s` : `${number(value, 0)} ms`;
}

export function rate(value) {
  return value === null || value === undefined ? missing : number(value, 1);
}

export function percent(value, digits = 0) {
  return value === null || value === undefined ? missing : `${number(value, digits)}%`;
}

export function bytes(value) {
  if (value === null || value === undefined) return missing;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let size = value;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) { size /= 1024; unit += 1; }
  return `${number(size, unit ? 1 : 0)} ${units[unit]}`;
}

export function celsius(value) {
  return value === null || value === undefined ? missing : `${number(value, 1)} °C`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : missing;
}

export function clock(date = new Date()) {
  return date.toLocaleTimeString();
}

// The same toggle as the chat page: the choice is remembered and theme.js applies it before the first paint.
const toggle = byId("theme-toggle");
function labelToggle() {
  const dark = document.documentElement.dataset.theme === "dark";
  toggle.setAttribute("aria-label", dark ? "Switch to light theme" : "Switch to dark theme");
}
toggle.addEventListener("click", () => {
  const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  document.documentElement.dataset.theme = next;
  try { localStorage.setItem("theme", next); } catch (error) { /* storage may be blocked */ }
  labelToggle();
});
labelToggle();
