// Files in the composer: attach by button, drag-and-drop or paste; each uploads at once with its progress,
// waits as a removable chip, and goes with the next message as `files: [ids]`. The room's files in a panel.
import { api, csrfToken } from "../api.js";
import { els, notify, state } from "./state.js";
import { confirmDialog } from "./dialogs.js";
import { icon } from "./icons.js";

// The controls are built here, so the page's template stays as it is: a paperclip before the message box,
// chips and a line for refusals above it, a drop hint over the conversation, a folder button in the top bar.
function make(tag, props = {}, attrs = {}) {
  const node = Object.assign(document.createElement(tag), props);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}
const chips = make("ul", { id: "chips", className: "chips", hidden: true }, { "aria-label": "Files to send" });
const problem = make("p", { id: "upload-error", className: "error upload-error", hidden: true }, { role: "alert" });
els.composer.prepend(chips, problem);
const attach = make("button", { type: "button", id: "attach", className: "icon attach", title: "Attach files (or drop or paste them)" },
  { "aria-label": "Attach files" });
const picker = make("input", { type: "file", id: "file-input", multiple: true, hidden: true, tabIndex: -1 },
  { "aria-label": "Files to attach" });
els.prompt.after(attach, picker);  // after the box: the composer stays as few Tab presses away as before
const dropZone = document.querySelector(".chat");
dropZone.append(make("div", { className: "drop-hint", textContent: "Drop files to attach them" }, { "aria-hidden": "true" }));
const filesButton = make("button", { type: "button", id: "open-room-files", className: "icon", title: "Files in this chat" },
  { "aria-label": "Files in this chat", "aria-haspopup": "dialog" });
document.getElementById("open-room-settings").before(filesButton);
const panel = make("dialog", { id: "room-files", className: "modal panel" }, { "aria-labelledby": "room-files-title" });
const fileList = make("ul", { id: "room-file-list", className: "file-list" });
const closeFiles = make("button", { type: "button", textContent: "Close" });
const panelButtons = make("div", { className: "modal-buttons" });
panelButtons.append(closeFiles);
panel.append(
  make("h2", { id: "room-files-title", textContent: "Files in this chat" }),
  make("p", { className: "hint", textContent: "Replies in this chat draw on these files and cite them. Attach more with the paperclip, or drop or paste them." }),
  fileList, panelButtons,
);
document.body.append(panel);

let nextKey = 1;
export const pending = [];  // {key, name, size, loaded, id, xhr}: the files to send with the next message

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

// What the server says about a refused file, in words a person can act on.
function refusal(status, data, name) {
  const reason = data && data.error && data.error.message;
  const code = data && data.error && data.error.code;
  if (status === 413 || code === "file_too_large") return `${name} is too large. ${reason || ""}`.trim();
  if (status === 415 || code === "unsupported_file_type") return `${name}: this type of file is not supported (text, Markdown, code, CSV, JSON or PDF).`;
  if (status === 422 || code === "no_text") return `${name} has no text to read. ${reason || ""}`.trim();
  return `${name} could not be uploaded: ${reason || `error ${status || "(no answer)"}`}.`;
}

function showProblem(text) {
  problem.textContent = text;
  problem.hidden = !text;
}

export function renderChips() {
  chips.replaceChildren();
  chips.hidden = !pending.length;
  for (const item of pending) {
    const chip = Object.assign(document.createElement("li"), { className: "chip" });
    chip.dataset.state = item.id ? "ready" : "uploading";
    chip.append(Object.assign(document.createElement("span"), { className: "chip-name", textContent: item.name }));
    if (item.id) {
      chip.append(Object.assign(document.createElement("span"), { className: "chip-size", textContent: size(item.size) }));
    } else {
      const bar = Object.assign(document.createElement("progress"), { max: item.size || 1, value: item.loaded });
      bar.setAttribute("aria-label", `Uploading ${item.name}`);
      chip.append(bar);
    }
    const remove = Object.assign(document.createElement("button"), { type: "button", className: "chip-remove", textContent: "×" });
    remove.setAttribute("aria-label", `Remove ${item.name}`);
    remove.title = `Remove ${item.name}`;
    remove.addEventListener("click", () => { drop(item); els.prompt.focus(); });
    chip.append(remove);
    chips.append(chip);
  }
}

function drop(item) {
  const at = pending.indexOf(item);
  if (at >= 0) pending.splice(at, 1);
  if (item.xhr && !item.id) item.xhr.abort();
  renderChips();
}

export function uploading() {
  return pending.some((item) => !item.id);
}

// The ids of the uploaded files, handed to the message being sent; the chips go with them.
export function takeFiles() {
  const ids = pending.filter((item) => item.id).map((item) => item.id);
  pending.length = 0;
  renderChips();
  showProblem("");  // a refusal belongs to the message it was meant for
  return ids;
}

function upload(file) {
  const item = { key: nextKey++, name: file.name || "pasted file", size: file.size, loaded: 0, id: null, xhr: null };
  pending.push(item);
  renderChips();
  const body = new FormData();
  body.append("file", file, item.name);
  const xhr = new XMLHttpRequest();  // fetch has no upload progress
  item.xhr = xhr;
  xhr.open("POST", `/api/v1/chat/sessions/${state.roomId}/upload`);
  xhr.setRequestHeader("X-CSRFToken", csrfToken());
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.addEventListener("progress", (event) => {
    item.loaded = event.loaded;
    const bar = chips.children[pending.indexOf(item)]?.querySelector("progress");
    if (bar) bar.value = event.loaded;
  });
  xhr.addEventListener("load", () => {
    let data = null;
    try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
    if (xhr.status === 201 && data && data.id) {
      item.id = data.id;
      item.size = data.size;
      renderChips();
      if (panel.open) loadFiles();
    } else {
      item.xhr = null;  // answered: nothing left to abort
      drop(item);
      showProblem(refusal(xhr.status, data, item.name));
    }
  });
  xhr.addEventListener("error", () => { item.xhr = null; drop(item); showProblem(refusal(0, null, item.name)); });
  xhr.send(body);
}

export async function addFiles(files) {
  const list = [...files];
  if (!list.length) return;
  showProblem("");
  if (!state.roomId) { notify("Open a chat first."); return; }
  for (const file of list) upload(file);
}

attach.append(icon("clip"));
filesButton.append(icon("folder"));
attach.addEventListener("click", () => picker.click());
picker.addEventListener("change", () => { addFiles(picker.files); picker.value = ""; els.prompt.focus(); });

els.prompt.addEventListener("paste", (event) => {
  const files = event.clipboardData ? [...event.clipboardData.files] : [];
  if (!files.length) return;  // plain text pastes as text
  event.preventDefault();
  addFiles(files);
});

// Dropping files anywhere on the conversation attaches them; the area says so while they hover.
function carriesFiles(event) {
  return event.dataTransfer && [...event.dataTransfer.types].includes("Files");
}
let depth = 0;
dropZone.addEventListener("dragenter", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  depth += 1;
  dropZone.classList.add("dropping");
});
dropZone.addEventListener("dragover", (event) => { if (carriesFiles(event)) event.preventDefault(); });
dropZone.addEventListener("dragleave", () => {
  depth = Math.max(0, depth - 1);
  if (!depth) dropZone.classList.remove("dropping");
});
dropZone.addEventListener("drop", (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  depth = 0;
  dropZone.classList.remove("dropping");
  addFiles(event.dataTransfer.files);
});

// A new room starts with nothing attached.
export function resetUploads() {
  for (const item of pending) if (item.xhr && !item.id) item.xhr.abort();
  pending.length = 0;
  renderChips();
  showProblem("");
}

// ---------------------------------------------------------------- the room's files

export async function loadFiles() {
  if (!state.roomId) return;
  const roomId = state.roomId;
  let files = [];
  try { files = await api(`rooms/${roomId}/files`); } catch (error) { notify(error.message); return; }
  fileList.replaceChildren();
  if (!files.length) {
    fileList.append(Object.assign(document.createElement("li"), { className: "hint", textContent: "No files in this chat yet." }));
  }
  for (const file of files) {
    const row = Object.assign(document.createElement("li"), { className: "file-row" });
    const link = Object.assign(document.createElement("a"), {
      href: `/api/v1/rooms/${roomId}/files/${file.id}/content`, textContent: file.name, download: file.name,
    });
    const facts = Object.assign(document.createElement("span"), { className: "hint",
      textContent: `${size(file.size)}${file.pages ? `, ${plural(file.pages, "page")}` : ""}, ${plural(file.chunk_count, "passage")}` });
    const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "Delete" });
    remove.setAttribute("aria-label", `Delete ${file.name}`);
    remove.addEventListener("click", async () => {
      if (!await confirmDialog("Delete file", `Delete "${file.name}" from this chat? Replies stop using it.`)) return;
      try {
        await api(`rooms/${roomId}/files/${file.id}`, { method: "DELETE" });
        const chip = pending.find((item) => item.id === file.id);
        if (chip) drop(chip);
        await loadFiles();
      } catch (error) { notify(error.message); }
    });
    row.append(link, facts, remove);
    fileList.append(row);
  }
}

filesButton.addEventListener("click", async () => {
  if (!state.roomId) return;
  await loadFiles();
  panel.showModal();
});
closeFiles.addEventListener("click", () => panel.close());
panel.addEventListener("close", () => filesButton.focus());

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}
