// The chat settings panel: the room's system prompt and generation parameters, stored with the room.
import { api } from "../api.js";
import { els, notify, state } from "./state.js";
import { GENERATION_KEYS, renderTitle } from "./conversation.js";

const panel = document.getElementById("room-settings");
const form = document.getElementById("room-settings-form");
const button = document.getElementById("open-room-settings");

function fill() {
  const room = state.room || {};
  const stored = (room.metadata && room.metadata.generation) || {};
  form.elements.system_prompt.value = room.system_prompt || "";
  for (const key of GENERATION_KEYS) form.elements[key].value = stored[key] ?? "";
}

button.addEventListener("click", () => {
  if (!state.room) return;
  fill();
  panel.showModal();
});
document.getElementById("room-settings-cancel").addEventListener("click", () => panel.close());
panel.addEventListener("close", () => button.focus());

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const generation = {};
  for (const key of GENERATION_KEYS) {
    const raw = form.elements[key].value.trim();
    if (raw !== "") generation[key] = key === "top_k" || key === "max_tokens" ? parseInt(raw, 10) : parseFloat(raw);
  }
  const metadata = { ...(state.room.metadata || {}), generation };
  try {
    state.room = await api(`rooms/${state.roomId}`, {
      method: "PATCH", body: { system_prompt: form.elements.system_prompt.value, metadata },
    });
    renderTitle();
    panel.close();
  } catch (error) { notify(error.message); }
});
