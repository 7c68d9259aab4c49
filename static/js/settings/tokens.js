// API tokens: create (the raw value shown once, with a copy button), list with usage, revoke after a confirmation.
import { api } from "../api.js";
import { onSubmit } from "./forms.js";

const form = document.getElementById("token-form");
const rows = document.getElementById("token-rows");
const created = document.getElementById("token-created");
const raw = document.getElementById("token-raw");
const copy = document.getElementById("token-copy");
const dialog = document.getElementById("revoke-dialog");

function when(value) {
  return value ? new Date(value).toLocaleString() : "Never";
}

function cell(row, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content); else td.textContent = content;
  row.append(td);
  return td;
}

function usageList(usage) {
  if (!usage || !usage.length) return "No calls yet";
  const list = document.createElement("ul");
  list.className = "usage";
  for (const item of usage) {
    const li = document.createElement("li");
    li.textContent = `${item.model}: ${item.calls} calls, ${item.prompt_tokens} prompt + ${item.completion_tokens} completion tokens`;
    list.append(li);
  }
  return list;
}

function confirmRevoke(token) {
  document.getElementById("revoke-text").textContent = `"${token.name}" (${token.key_prefix}…) stops working at once.`;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "revoke"), { once: true }));
}

export async function loadTokens() {
  const data = await api("auth/tokens?limit=100");
  rows.replaceChildren();
  for (const token of data.results) {
    const row = document.createElement("tr");
    row.dataset.tokenId = token.id;
    cell(row, token.name);
    const prefix = document.createElement("code");
    prefix.textContent = `${token.key_prefix}…`;
    cell(row, prefix);
    cell(row, when(token.created_at));
    cell(row, when(token.last_used_at));
    cell(row, usageList(token.usage));
    const revoke = document.createElement("button");
    revoke.type = "button";
    revoke.textContent = "Revoke";
    revoke.setAttribute("aria-label", `Revoke ${token.name}`);
    revoke.addEventListener("click", async () => {
      if (!(await confirmRevoke(token))) { revoke.focus(); return; }
      await api(`auth/tokens/${token.id}`, { method: "DELETE" });
      await loadTokens();
      document.querySelector("#token-form .status").textContent = `Revoked "${token.name}".`;
      document.getElementById("token-name").focus();
    });
    cell(row, revoke);
    rows.append(row);
  }
  document.getElementById("token-empty").hidden = data.results.length > 0;
}

onSubmit(form, async () => {
  const token = await api("auth/tokens", { method: "POST", body: { name: form.elements.name.value.trim() } });
  raw.value = token.token;
  created.hidden = false;
  copy.textContent = "Copy";
  form.reset();
  await loadTokens();
  raw.focus();
  raw.select();
  return token;
}, (token) => `Created "${token.name}".`);

copy.addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(raw.value);
    copy.textContent = "Copied";
  } catch {
    raw.select();
    copy.textContent = "Press Ctrl+C";
  }
});
