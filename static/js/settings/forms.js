// Shared form plumbing for the settings page: field errors next to their inputs, and a status line per form.

export function clearErrors(form) {
  for (const error of form.querySelectorAll(".error")) { error.hidden = true; error.textContent = ""; }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

// The API answers {"error": {"details": {field: [messages]}}}; nested objects (generation) are flattened.
function flatten(details, out = {}) {
  for (const [name, value] of Object.entries(details || {})) {
    if (Array.isArray(value)) out[name] = value.join(" ");
    else if (value && typeof value === "object") flatten(value, out);
    else out[name] = String(value);
  }
  return out;
}

// Shows each error at its field and focuses the first one, so screen readers announce it.
export function showErrors(form, error) {
  const details = flatten(error.data && error.data.error && error.data.error.details);
  let first = null;
  for (const [name, message] of Object.entries(details)) {
    const slot = form.querySelector(`#${form.id.replace("-form", "")}-${CSS.escape(name)}-error`);
    const input = form.elements[name];
    if (!slot || !input) continue;
    slot.textContent = message;
    slot.hidden = false;
    input.setAttribute("aria-invalid", "true");
    first = first || input;
  }
  if (first) first.focus();
  else setStatus(form, error.message || "Something went wrong.");
}

export function setStatus(form, text) {
  form.querySelector(".status").textContent = text;
}

// One submit handler shape: clear, send, report success or the errors.
export function onSubmit(form, send, done = "Saved.") {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    setStatus(form, "");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const result = await send();
      setStatus(form, typeof done === "function" ? done(result) : done);
    } catch (error) {
      showErrors(form, error);
    } finally {
      button.disabled = false;
    }
  });
}
