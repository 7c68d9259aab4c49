// The panic page: the switch's state, a guarded trigger (the wipe needs WIPE typed), and reset.
import { api } from "../api.js";
import { byId, missing, pill, poll, setBanner, setText, showStatus, when } from "./common.js";

const REFRESH_MS = 5000;
const WIPE_WORD = "WIPE";

const form = byId("trigger-form");
const reason = byId("trigger-reason");
const wipe = byId("wipe-data");
const wipeConfirm = byId("wipe-confirm");
const formError = byId("trigger-error");
const resetButton = byId("panic-reset");

function describeCounts(counts) {
  const entries = Object.entries(counts || {});
  if (!entries.length) return "nothing";
  return entries.map(([label, count]) => `${count} ${label.split(".").pop().toLowerCase()}`).join(", ");
}

function render(state) {
  pill("panic-state", state.active ? "ON" : "OFF", state.active ? "bad" : "good");
  setText("panic-reason", state.reason || missing);
  setText("panic-triggered", state.triggered_at ? `by ${state.triggered_by || "unknown"}, ${when(state.triggered_at)}` : "never");
  setText("panic-reset-info", state.reset_at ? `by ${state.reset_by || "unknown"}, ${when(state.reset_at)}` : missing);
  setText("panic-wipe", state.wiped ? `deleted ${describeCounts(state.wipe_counts)}` : "none with the last trigger");
  resetButton.hidden = !state.active;
  setBanner(state.active);
}

async function refresh() {
  render(await api("chat/panic/status"));
}

function fail(message, field) {
  formError.textContent = message;
  field.setAttribute("aria-invalid", "true");
  field.focus();
}

wipe.addEventListener("change", () => {
  byId("wipe-confirm-field").hidden = !wipe.checked;
  if (!wipe.checked) wipeConfirm.value = "";
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  formError.textContent = "";
  reason.removeAttribute("aria-invalid");
  wipeConfirm.removeAttribute("aria-invalid");
  const why = reason.value.trim();
  if (!why) { fail("Give a reason: it is shown with the state and kept in the audit trail.", reason); return; }
  if (wipe.checked && wipeConfirm.value.trim() !== WIPE_WORD) {
    fail(`Type ${WIPE_WORD} to confirm the wipe. Nothing was triggered and nothing was deleted.`, wipeConfirm);
    return;
  }
  const question = wipe.checked
    ? "Trigger panic AND delete every room, message and project of every user? This cannot be undone."
    : "Trigger panic? Every reply stops and chat work is refused until someone resets the switch.";
  if (!window.confirm(question)) return;
  try {
    const result = await api("chat/panic/trigger", { method: "POST", body: { reason: why, wipe_data: wipe.checked } });
    render(result);
    const deleted = wipe.checked ? ` Deleted ${describeCounts(result.deleted)}.` : "";
    showStatus(`Panic is on. ${result.streams_stopped} replies stopped.${deleted}`);
    form.reset();
    byId("wipe-confirm-field").hidden = true;
  } catch (error) {
    formError.textContent = `Trigger failed: ${error.message}`;
  }
});

resetButton.addEventListener("click", async () => {
  try {
    render(await api("chat/panic/reset", { method: "POST" }));
    showStatus("Panic is off: chat work is allowed again.");
    byId("panic-state").focus();
  } catch (error) {
    showStatus(`Reset failed: ${error.message}`, { error: true });
  }
});

poll(refresh, REFRESH_MS);
