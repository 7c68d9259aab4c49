// Around the conversation: the scroll-to-bottom button, keyboard shortcuts and their help (`?`), export
// of the open chat and import of one. The controls are built here; the template stays as it is.
import { api } from "../api.js";
import { els, notify, state } from "./state.js";
import { icon } from "./icons.js";
import { copyToClipboard } from "./render.js";
import { newChat, openRoom } from "./conversation.js";
import { loadRooms, setSidebar } from "./sidebar.js";

function make(tag, props = {}, attrs = {}) {
  const node = Object.assign(document.createElement(tag), props);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

// ---------------------------------------------------------------- scroll to the newest message

const toBottom = make("button", { type: "button", className: "to-bottom", hidden: true, title: "Scroll to the newest message" },
  { "aria-label": "Scroll to the newest message" });
toBottom.append(icon("down_arrow"));
els.messages.after(toBottom);
function syncToBottom() {
  const away = els.messages.scrollHeight - els.messages.scrollTop - els.messages.clientHeight;
  toBottom.hidden = away < 200;
}
els.messages.addEventListener("scroll", syncToBottom, { passive: true });
new ResizeObserver(syncToBottom).observe(els.messages);
toBottom.addEventListener("click", () => {
  els.messages.scrollTop = els.messages.scrollHeight;
  toBottom.hidden = true;
  els.prompt.focus();
});

// ---------------------------------------------------------------- keyboard shortcuts and their help

const mac = /Mac|iPhone|iPad/.test(navigator.platform || "");
const mod = mac ? "⌘" : "Ctrl";
export const SHORTCUTS = [
  [`${mod}+Shift+O`, "New chat"],
  ["Shift+Esc", "Focus the message box"],
  [`${mod}+K`, "Search chats"],
  ["Esc", "Stop the reply being written"],
  [`${mod}+Shift+C`, "Copy the last reply"],
  ["?", "Show these shortcuts"],
];

const help = make("dialog", { id: "shortcuts", className: "modal" }, { "aria-labelledby": "shortcuts-title" });
const table = make("dl", { className: "shortcuts" });
for (const [keys, what] of SHORTCUTS) {
  const term = make("dt");
  for (const [index, key] of keys.split(/\+(?=.)/).entries()) {
    if (index) term.append("+");
    term.append(make("kbd", { textContent: key }));
  }
  table.append(term, make("dd", { textContent: what }));
}
const closeHelp = make("button", { type: "button", textContent: "Close" });
const helpButtons = make("div", { className: "modal-buttons" });
helpButtons.append(closeHelp);
help.append(make("h2", { id: "shortcuts-title", textContent: "Keyboard shortcuts" }), table, helpButtons);
document.body.append(help);
closeHelp.addEventListener("click", () => help.close());
let helpOpener = null;
help.addEventListener("close", () => { if (helpOpener && helpOpener.isConnected) helpOpener.focus(); });

export function showShortcuts() {
  if (help.open) return;
  helpOpener = document.activeElement;
  help.showModal();
  closeHelp.focus();
}

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

export function lastReplyText() {
  const reply = [...state.messages].reverse().find((m) => m.role === "assistant" && m.content);
  return reply ? reply.content : "";
}

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.isComposing) return;
  const modKey = mac ? event.metaKey : event.ctrlKey;
  const key = event.key.toLowerCase();
  if (modKey && event.shiftKey && key === "o") { event.preventDefault(); newChat(); return; }
  if (modKey && !event.shiftKey && key === "k") {
    event.preventDefault();
    if (window.matchMedia("(max-width: 720px)").matches) setSidebar(true);
    els.search.focus();
    els.search.select();
    return;
  }
  if (modKey && event.shiftKey && key === "c") {
    const text = lastReplyText();
    if (!text) return;
    event.preventDefault();
    copyToClipboard(text);
    return;
  }
  if (event.key === "Escape" && event.shiftKey && !document.querySelector("dialog[open]")) {
    event.preventDefault();
    els.prompt.focus();
    return;
  }
  if (event.key === "?" && !modKey && !event.altKey && !typing(event.target) && !document.querySelector("dialog[open]")) {
    event.preventDefault();
    showShortcuts();
  }
});

// ---------------------------------------------------------------- export and import

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = make("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function fileName(room, extension) {
  const base = (room.name || "chat").replace(/[^\w.-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 60) || "chat";
  return `${base}.${extension}`;
}

export async function exportRoom(room, format) {
  try {
    const response = await fetch(`/api/v1/rooms/${room.id}/export?format=${format}`, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`Export failed (${response.status})`);
    const text = await response.text();
    if (format === "markdown") download(fileName(room, "md"), "text/markdown", text);
    else download(fileName(room, "json"), "application/json", text);
  } catch (error) { notify(error.message); }
}

const importPicker = make("input", { type: "file", accept: ".json,application/json", hidden: true, tabIndex: -1 },
  { "aria-label": "Chat export to import" });
const importButton = make("button", { type: "button", id: "import-chat", className: "link", textContent: "Import a chat" });
document.querySelector(".sidebar-top").append(importButton, importPicker);
importButton.addEventListener("click", () => importPicker.click());
importPicker.addEventListener("change", async () => {
  const file = importPicker.files[0];
  importPicker.value = "";
  if (!file) return;
  let data;
  try { data = JSON.parse(await file.text()); } catch { notify(`${file.name} is not a chat export (JSON).`); return; }
  try {
    const room = await api("rooms/import", { method: "POST", body: data });
    await loadRooms();
    await openRoom(room.id);
  } catch (error) {
    notify(`${file.name} could not be imported: ${error.message}`);
  }
});
