// Marks the model picker's loaded models, read again whenever the picker is opened (models load and unload).
import { api } from "../api.js";
import { els, state } from "./state.js";

export function markLoaded() {
  const byName = new Map(state.models.map((model) => [model.qualified_name, model]));
  for (const option of els.model.options) {
    const model = byName.get(option.value);
    if (!model) continue;
    const label = `${model.name} (${model.provider})`;
    option.textContent = model.loaded ? `● ${label}` : label;
    option.dataset.loaded = model.loaded ? "true" : "false";
    option.setAttribute("aria-label", model.loaded ? `${label}, loaded` : label);
  }
}

let pending = null;

export function refreshLoaded() {
  // One listing at a time: focus and a click arrive together when the picker is opened.
  pending = pending || api("chat/models")
    .then((listing) => { state.models = listing.results; markLoaded(); })
    .catch(() => { /* the marks stay as they were */ })
    .finally(() => { pending = null; });
  return pending;
}

els.model.addEventListener("focus", refreshLoaded);
els.model.addEventListener("pointerdown", refreshLoaded);
