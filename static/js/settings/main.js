// The settings page: profile, password, chat defaults, theme and API tokens, each saved through the API.
import { api } from "../api.js";
import { clearErrors, onSubmit, setStatus, showErrors } from "./forms.js";
import { loadTokens } from "./tokens.js";

const GENERATION = ["temperature", "top_p", "top_k", "repeat_penalty", "max_tokens"];
const profile = document.getElementById("profile-form");
const password = document.getElementById("password-form");
const defaults = document.getElementById("defaults-form");
const theme = document.getElementById("theme-form");

onSubmit(profile, () => api("auth/me", {
  method: "PATCH",
  body: { email: profile.elements.email.value.trim(), first_name: profile.elements.first_name.value,
          last_name: profile.elements.last_name.value },
}), "Profile saved.");

onSubmit(password, async () => {
  const fields = password.elements;
  const result = await api("auth/password/change", {
    method: "POST",
    body: { current_password: fields.current_password.value, new_password: fields.new_password.value,
            new_password_confirm: fields.new_password_confirm.value, revoke_tokens: fields.revoke_tokens.checked },
  });
  password.reset();
  if (result.revoked_tokens) await loadTokens();
  return result;
}, (result) => result.revoked_tokens ? `Password changed; ${result.revoked_tokens} tokens revoked.` : "Password changed.");

function fillDefaults(prefs) {
  defaults.elements.default_model.value = prefs.default_model;
  defaults.elements.system_prompt.value = prefs.system_prompt;
  for (const key of GENERATION) {
    const value = prefs.generation[key];
    defaults.elements[key].value = value === null || value === undefined ? "" : String(value);
  }
}

// An empty field gives the parameter back to the server; a number the browser cannot read stays a string,
// so the server's check reports it at the field.
function generationFromForm() {
  const out = {};
  for (const key of GENERATION) {
    const raw = defaults.elements[key].value.trim();
    const number = Number(raw);
    out[key] = raw === "" ? null : Number.isFinite(number) ? number : raw;
  }
  return out;
}

onSubmit(defaults, async () => fillDefaults(await api("auth/preferences", {
  method: "PATCH",
  body: { default_model: defaults.elements.default_model.value, system_prompt: defaults.elements.system_prompt.value,
          generation: generationFromForm() },
})), "Defaults saved.");

function applyTheme(choice) {
  const dark = choice === "system" ? window.matchMedia("(prefers-color-scheme: dark)").matches : choice === "dark";
  document.documentElement.dataset.theme = dark ? "dark" : "light";
  document.documentElement.dataset.themePreference = choice;
  try {
    if (choice === "system") localStorage.removeItem("theme"); else localStorage.setItem("theme", choice);
  } catch { /* storage may be blocked */ }
}

theme.addEventListener("change", async (event) => {
  clearErrors(theme);
  applyTheme(event.target.value);
  try {
    await api("auth/preferences", { method: "PATCH", body: { theme: event.target.value } });
    setStatus(theme, "Theme saved.");
  } catch (error) { showErrors(theme, error); }
});

async function loadModels(current) {
  const select = defaults.elements.default_model;
  let models = [];
  try { models = (await api("chat/models")).results; } catch { /* no backend reachable: the stored choice still shows */ }
  for (const model of models) select.append(new Option(`${model.name} (${model.provider})`, model.qualified_name));
  if (current && ![...select.options].some((option) => option.value === current)) {
    select.append(new Option(`${current} (not available now)`, current));
  }
}

async function start() {
  const prefs = await api("auth/preferences");
  await loadModels(prefs.default_model);
  fillDefaults(prefs);
  theme.elements.theme.value = prefs.theme;
  await loadTokens();
}

start().catch((error) => setStatus(defaults, error.message));
