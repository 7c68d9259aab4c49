// The chat page: rooms over the REST API, live replies over the WebSocket.
// Every model or user text goes through marked + DOMPurify (assistant) or textContent (user): never raw HTML.
import { marked } from "../vendor/marked.esm.js";
import DOMPurify from "../vendor/purify.es.mjs";
import hljs from "../vendor/highlight.min.js";
import { api } from "./api.js";

const shell = document.getElementById("shell");
const els = {
  sidebar: document.getElementById("sidebar"),
  roomList: document.getElementById("room-list"),
  search: document.getElementById("room-search"),
  projectFilter: document.getElementById("project-filter"),
  newProject: document.getElementById("new-project"),
  showArchived: document.getElementById("show-archived"),
  newChat: document.getElementById("new-chat"),
  title: document.getElementById("room-title"),
  conn: document.getElementById("conn"),
  theme: document.getElementById("theme-toggle"),
  toggleSidebar: document.getElementById("toggle-sidebar"),
  messages: document.getElementById("messages"),
  composer: document.getElementById("composer"),
  prompt: document.getElementById("prompt"),
  send: document.getElementById("send"),
  stop: document.getElementById("stop"),
  model: document.getElementById("model-picker"),
  typing: document.getElementById("typing"),
  toasts: document.getElementById("toasts"),
};

const state = {
  roomId: shell.dataset.roomId || "",
  room: null,
  messages: [],          // the active branch, oldest first
  live: new Map(),       // message id -> {text, status} for replies streaming now
  streams: new Map(),    // stream id -> {messageId, seq}
  ws: null,
  outbox: [],            // frames sent while the socket is (re)connecting, flushed on open
  inbox: [],             // frames received while a room's history is still loading
  ready: false,          // the open room's history is loaded and frames apply directly
  pickerTouched: false,  // the user chose a model since the room opened: keep their choice
  switching: false,      // a new chat is being created: sends wait for its socket
  retry: 0,
  models: [],
  rooms: [],
};

marked.setOptions({ gfm: true, breaks: true });
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") { node.setAttribute("target", "_blank"); node.setAttribute("rel", "noopener noreferrer"); }
});

// ---------------------------------------------------------------- HTTP

function notify(message) {
  const note = document.createElement("p");
  note.className = "error toast";
  note.setAttribute("role", "alert");
  note.textContent = message;
  els.toasts.append(note);
  setTimeout(() => note.remove(), 8000);
}

// ---------------------------------------------------------------- theme and layout

function applyThemeLabel() {
  const dark = document.documentElement.dataset.theme === "dark";
  els.theme.setAttribute("aria-label", dark ? "Switch to light theme" : "Switch to dark theme");
  // Only one code-highlighting theme may apply; hiding a <link> does not switch it off, `disabled` does.
  document.getElementById("hl-light").disabled = dark;
  document.getElementById("hl-dark").disabled = !dark;
}
els.theme.addEventListener("click", () => {
  const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  document.documentElement.dataset.theme = next;
  try { localStorage.setItem("theme", next); } catch (e) { /* ignore */ }
  applyThemeLabel();
});
applyThemeLabel();

function setSidebar(open) {
  els.sidebar.classList.toggle("open", open);
  els.toggleSidebar.setAttribute("aria-expanded", String(open));
  els.toggleSidebar.setAttribute("aria-label", open ? "Hide chats" : "Show chats");
}
els.toggleSidebar.addEventListener("click", (event) => {
  event.stopPropagation();
  setSidebar(!els.sidebar.classList.contains("open"));
});
// On a phone the sidebar covers its own button: Escape or a tap on the conversation closes it.
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && els.sidebar.classList.contains("open")) { setSidebar(false); els.toggleSidebar.focus(); }
});
document.querySelector(".chat").addEventListener("click", () => {
  if (els.sidebar.classList.contains("open")) setSidebar(false);
});

// ---------------------------------------------------------------- sidebar: rooms and projects

async function loadProjects() {
  const data = await api("projects/?limit=200");
  const current = els.projectFilter.value;
  els.projectFilter.replaceChildren(new Option("All chats", ""));
  for (const project of data.results) els.projectFilter.append(new Option(project.name, project.id));
  els.projectFilter.value = current;
}

async function loadRooms() {
  const params = new URLSearchParams({ limit: "100" });
  if (els.search.value.trim()) params.set("q", els.search.value.trim());
  if (els.projectFilter.value) params.set("project", els.projectFilter.value);
  params.set("archived", els.showArchived.checked ? "all" : "false");
  const query = els.search.value.trim();
  const [data, found] = await Promise.all([
    api(`rooms/?${params}`),
    query.length >= 2 ? api(`chat/search?${new URLSearchParams({ q: query, limit: "30" })}`).catch(() => null) : null,
  ]);
  state.rooms = data.results.sort((a, b) => Number(b.pinned) - Number(a.pinned));
  state.hits = found ? found.results : [];
  renderRooms();
}

// Full search in the sidebar: hits grouped by room, each with its snippet; a click (or Enter) opens the hit.
function renderHits() {
  if (!state.hits || !state.hits.length) return;
  const heading = Object.assign(document.createElement("li"), { className: "hits-heading", textContent: "In messages and files" });
  Object.assign(heading.style, { padding: ".6rem .5rem .2rem", fontSize: ".8rem", opacity: ".7" });
  els.roomList.append(heading);
  const groups = new Map();
  for (const hit of state.hits) {
    if (!groups.has(hit.room.id)) groups.set(hit.room.id, { room: hit.room, hits: [] });
    groups.get(hit.room.id).hits.push(hit);
  }
  for (const { room, hits } of groups.values()) {
    const item = Object.assign(document.createElement("li"), { className: "hit-group" });
    const name = Object.assign(document.createElement("div"), { className: "hit-room", textContent: room.name });
    Object.assign(name.style, { fontWeight: "600", padding: ".4rem .5rem 0" });
    item.append(name);
    for (const hit of hits.slice(0, 3)) {
      const button = Object.assign(document.createElement("button"), { type: "button", className: "hit" });
      Object.assign(button.style, { display: "block", width: "100%", textAlign: "left", border: "0", background: "none",
        padding: ".3rem .5rem", fontSize: ".85rem", color: "inherit", cursor: "pointer" });
      // The server escapes the text and marks terms with <mark>; only <mark> survives here.
      button.innerHTML = DOMPurify.sanitize(hit.snippet, { ALLOWED_TAGS: ["mark"], ALLOWED_ATTR: [] });
      if (hit.file) button.prepend(Object.assign(document.createElement("strong"), { textContent: `${hit.file.name}: ` }));
      button.addEventListener("click", () => openHit(hit));
      item.append(button);
    }
    els.roomList.append(item);
  }
}

async function openHit(hit) {
  await openRoom(hit.room.id);
  if (hit.message_id) highlightMessage(hit.message_id);
  else if (hit.file) openPassage(hit.room.id, { file_id: hit.file.id, chunk: hit.chunk.ordinal });
}

function highlightMessage(id) {
  const node = els.messages.querySelector(`[data-message-id="${CSS.escape(id)}"]`);
  if (!node) return;
  node.scrollIntoView({ block: "center" });
  node.style.outline = "2px solid #f2c94c";  // the hit, marked for a moment
  setTimeout(() => { node.style.outline = ""; }, 2500);
}

async function openPassage(roomId, citation) {
  try {
    const passage = await api(`rooms/${roomId}/files/${citation.file_id}/chunks/${citation.chunk}`);
    const where = passage.page ? `page ${passage.page}` : `lines ${passage.line_start}–${passage.line_end}`;
    const dialog = Object.assign(document.createElement("dialog"), { className: "passage" });
    const close = Object.assign(document.createElement("button"), { type: "button", textContent: "Close" });
    close.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => dialog.remove());
    dialog.append(
      Object.assign(document.createElement("h2"), { textContent: `${passage.file.name}, ${where}` }),
      Object.assign(document.createElement("pre"), { textContent: passage.text }),  // file text stays text
      close,
    );
    document.body.append(dialog);
    dialog.showModal();
  } catch (error) {
    notify(error.message || "That passage is no longer available.");
  }
}

els.search.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && state.hits && state.hits.length) { event.preventDefault(); openHit(state.hits[0]); }
});

function roomButton(label, text, handler) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = text;
  button.setAttribute("aria-label", label);
  button.title = label;
  button.addEventListener("click", (event) => { event.stopPropagation(); handler(); });
  return button;
}

function renderRooms() {
  els.roomList.replaceChildren();
  for (const room of state.rooms) {
    const item = document.createElement("li");
    item.className = "room-item";
    item.dataset.roomId = room.id;
    if (room.id === state.roomId) item.setAttribute("aria-current", "page");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.textContent = (room.pinned ? "★ " : "") + room.name + (room.archived ? " (archived)" : "");
    open.title = room.name;
    open.addEventListener("click", () => openRoom(room.id));
    const actions = document.createElement("span");
    actions.className = "actions";
    actions.append(
      roomButton(`Rename ${room.name}`, "✎", () => renameRoom(room)),
      roomButton(room.pinned ? `Unpin ${room.name}` : `Pin ${room.name}`, room.pinned ? "Unpin" : "Pin",
        () => updateRoom(room.id, { pinned: !room.pinned })),
      roomButton(room.archived ? `Unarchive ${room.name}` : `Archive ${room.name}`, room.archived ? "Unarchive" : "Archive",
        () => updateRoom(room.id, { archived: !room.archived })),
      roomButton(`Delete ${room.name}`, "Delete", () => deleteRoom(room)),
    );
    item.append(open, actions);
    els.roomList.append(item);
  }
  renderHits();
}

async function updateRoom(id, changes) {
  try {
    const room = await api(`rooms/${id}`, { method: "PATCH", body: changes });
    if (id === state.roomId) { state.room = room; renderTitle(); }
    await loadRooms();
  } catch (error) { notify(error.message); }
}

function renameRoom(room) {
  const name = window.prompt("New name for this chat", room.name);
  if (name !== null && name.trim()) updateRoom(room.id, { name: name.trim() });
}

async function deleteRoom(room) {
  if (!window.confirm(`Delete "${room.name}"?`)) return;
  try {
    await api(`rooms/${room.id}`, { method: "DELETE" });
    if (room.id === state.roomId) await newChat();
    else await loadRooms();
  } catch (error) { notify(error.message); }
}

let searchTimer = null;
els.search.addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(loadRooms, 200); });
els.projectFilter.addEventListener("change", loadRooms);
els.showArchived.addEventListener("change", loadRooms);
els.newProject.addEventListener("click", async () => {
  const name = window.prompt("Name of the new project");
  if (!name || !name.trim()) return;
  try {
    const project = await api("projects/", { method: "POST", body: { name: name.trim() } });
    await loadProjects();
    els.projectFilter.value = project.id;
    await loadRooms();
  } catch (error) { notify(error.message); }
});

async function newChat() {
  // Leave the current room at once, so nothing typed from now on can reach it.
  state.switching = true;
  state.ready = false;
  disconnect();
  try {
    const room = els.projectFilter.value
      ? await api("rooms/", { method: "POST", body: { project: els.projectFilter.value } })
      : await api("rooms/fresh", { method: "POST", body: {} });
    await openRoom(room.id, { keepQueued: true });
    await loadRooms();
    els.prompt.focus();
  } catch (error) { notify(error.message); } finally { state.switching = false; }
}
els.newChat.addEventListener("click", newChat);

// ---------------------------------------------------------------- models

async function loadModels() {
  try {
    state.models = await api("chat/models");
  } catch (error) { state.models = []; }
  els.model.replaceChildren();
  for (const model of state.models) {
    const option = new Option(`${model.name} (${model.provider})`, model.qualified_name);
    if (model.default) option.dataset.default = "true";
    els.model.append(option);
  }
  selectRoomModel();
}

function selectRoomModel() {
  if (state.pickerTouched) return;
  const wanted = state.room && state.room.model;
  const match = state.models.find((m) => m.name === wanted || m.qualified_name === wanted);
  const fallback = state.models.find((m) => m.default);
  if (match) els.model.value = match.qualified_name;
  else if (fallback) els.model.value = fallback.qualified_name;
}

els.model.addEventListener("change", () => {
  state.pickerTouched = true;
  if (state.roomId && !state.switching) updateRoom(state.roomId, { model: els.model.value });
});

// ---------------------------------------------------------------- conversation

function renderTitle() {
  els.title.textContent = state.room ? state.room.name : "New chat";
  document.title = `${els.title.textContent} · Local LLM Chat`;
}

async function openRoom(id, { keepQueued = false } = {}) {
  // Switch everything to the new room at once: sends made from now on queue for its socket, and frames
  // wait in the inbox until its history is on screen. A new chat keeps what was typed (and the model
  // picked) while it was being created.
  state.roomId = id;
  state.ready = false;
  state.inbox = [];
  state.messages = [];
  state.streams.clear();
  state.live.clear();
  if (!keepQueued) { state.outbox = []; state.pickerTouched = false; }
  history.replaceState(null, "", `/chat/${id}/`);
  setSidebar(false);
  renderMessages();
  renderRooms();
  connect();
  state.room = await api(`rooms/${id}`);
  renderTitle();
  if (state.pickerTouched && els.model.value && els.model.value !== state.room.model) {
    updateRoom(id, { model: els.model.value });
  }
  selectRoomModel();
  await loadHistory();
  state.ready = true;
  for (const frame of state.inbox.splice(0)) handleFrame(frame);
}

async function loadHistory() {
  if (!state.roomId) return;
  const data = await api(`rooms/${state.roomId}/history?limit=200`);
  state.messages = data.results;
  for (const message of state.messages) {
    const live = state.live.get(message.id);
    if (live && live.text.length >= message.content.length) { message.content = live.text; message.status = live.status; }
  }
  renderMessages();
}

function markdown(text) {
  const html = DOMPurify.sanitize(marked.parse(text || ""));
  const box = document.createElement("div");
  box.className = "content";
  box.innerHTML = html;
  box.querySelectorAll("pre code").forEach((block) => hljs.highlightElement(block));
  return box;
}

function actionButton(label, text, handler, pressed) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = text;
  button.setAttribute("aria-label", label);
  button.title = label;
  if (pressed !== undefined) button.setAttribute("aria-pressed", String(pressed));
  button.addEventListener("click", handler);
  return button;
}

function messageNode(message) {
  const node = document.createElement("article");
  node.className = `msg ${message.role}`;
  node.dataset.messageId = message.id;
  node.dataset.status = message.status;
  if (message.status === "streaming") node.classList.add("streaming");
  node.setAttribute("aria-label", message.role === "user" ? "Your message" : "Assistant reply");
  if (message.role === "assistant") {
    node.append(markdown(message.content));
  } else {
    const content = document.createElement("div");
    content.className = "content";
    content.textContent = message.content;  // user text is shown as text, never parsed as HTML
    node.append(content);
  }
  const citations = (message.metadata && message.metadata.citations) || [];
  if (citations.length) node.append(citationsNode(citations));
  node.append(metaNode(message));
  return node;
}

async function refreshCitations(message) {
  // Citations are stored on the reply when it starts; they are read back once it ends.
  try {
    const fresh = (await api(`rooms/${state.roomId}/history?limit=200`)).results.find((m) => m.id === message.id);
    if (fresh && fresh.metadata && fresh.metadata.citations) { message.metadata = fresh.metadata; renderLater(message.id); }
  } catch { /* the reply is shown without its sources */ }
}

function citationsNode(citations) {
  const list = Object.assign(document.createElement("div"), { className: "citations" });
  list.setAttribute("aria-label", "Sources");
  for (const citation of citations) {
    const where = citation.page ? `p. ${citation.page}` : `lines ${citation.line_start}–${citation.line_end}`;
    list.append(actionButton(`Open source ${citation.n}`, `[${citation.n}] ${citation.file_name}, ${where}`,
      () => openPassage(state.roomId, citation)));
  }
  return list;
}

function metaNode(message) {
  const meta = document.createElement("div");
  meta.className = "meta";
  const siblings = message.sibling_ids || [message.id];
  if (siblings.length > 1) {
    const index = siblings.indexOf(message.id);
    meta.append(
      actionButton("Previous version", "‹", () => switchBranch(siblings[index - 1]), undefined),
      Object.assign(document.createElement("span"), { className: "branch", textContent: `${index + 1}/${siblings.length}` }),
      actionButton("Next version", "›", () => switchBranch(siblings[index + 1]), undefined),
    );
    meta.children[0].disabled = index === 0;
    meta.children[2].disabled = index === siblings.length - 1;
  }
  meta.append(actionButton("Copy", "Copy", () => copyText(message)));
  if (message.role === "user") {
    meta.append(actionButton("Edit", "Edit", () => startEdit(message)));
  } else if (message.status === "streaming") {
    meta.append(actionButton("Stop", "Stop", () => stopStreams()));
  } else {
    meta.append(
      actionButton("Regenerate", "↻ Regenerate", () => sendFrame({ type: "regenerate", message_id: message.id, model: els.model.value })),
      actionButton("Good reply", "Good", () => rate(message, message.rating === 1 ? 0 : 1), message.rating === 1),
      actionButton("Bad reply", "Bad", () => rate(message, message.rating === -1 ? 0 : -1), message.rating === -1),
    );
    if (message.status !== "complete") {
      meta.append(Object.assign(document.createElement("span"), { className: "status", textContent: message.status }));
    }
  }
  return meta;
}

function renderMessages() {
  els.messages.replaceChildren();
  if (!state.messages.length) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "Ask anything to start.";
    els.messages.append(empty);
  }
  for (const message of state.messages) els.messages.append(messageNode(message));
  updateComposer();
  els.messages.scrollTop = els.messages.scrollHeight;
}

const pendingRender = new Set();
function renderLater(messageId) {
  if (!pendingRender.size) requestAnimationFrame(flushRenders);
  pendingRender.add(messageId);
}
function flushRenders() {
  const nearBottom = els.messages.scrollHeight - els.messages.scrollTop - els.messages.clientHeight < 80;
  for (const id of pendingRender) {
    const message = state.messages.find((m) => m.id === id);
    const old = els.messages.querySelector(`[data-message-id="${id}"]`);
    if (message && old) old.replaceWith(messageNode(message));
  }
  pendingRender.clear();
  updateComposer();
  if (nearBottom) els.messages.scrollTop = els.messages.scrollHeight;
}

function updateComposer() {
  const streaming = state.messages.some((m) => m.status === "streaming");
  els.stop.hidden = !streaming;
  els.send.hidden = streaming;
}

async function copyText(message) {
  try { await navigator.clipboard.writeText(message.content); } catch (e) {
    const area = Object.assign(document.createElement("textarea"), { value: message.content });
    document.body.append(area); area.select(); document.execCommand("copy"); area.remove();
  }
}

async function rate(message, rating) {
  try {
    const updated = await api(`rooms/${state.roomId}/messages/${message.id}/rating`, { method: "POST", body: { rating } });
    message.rating = updated.rating;
    renderLater(message.id);
  } catch (error) { notify(error.message); }
}

async function switchBranch(messageId) {
  if (!messageId) return;
  try {
    await api(`rooms/${state.roomId}/branch`, { method: "POST", body: { message_id: messageId } });
    await loadHistory();
  } catch (error) { notify(error.message); }
}

function startEdit(message) {
  const node = els.messages.querySelector(`[data-message-id="${message.id}"]`);
  const box = document.createElement("div");
  box.className = "edit-box";
  const area = document.createElement("textarea");
  area.value = message.content;
  area.setAttribute("aria-label", "Edit message");
  const save = actionButton("Save and submit", "Save & submit", () => {
    if (area.value.trim()) sendFrame({ type: "edit_message", message_id: message.id, content: area.value, model: els.model.value });
  });
  const cancel = actionButton("Cancel editing", "Cancel", () => renderMessages());
  area.addEventListener("keydown", (event) => { if (event.key === "Escape") renderMessages(); });
  box.append(area, Object.assign(document.createElement("div"), { className: "meta" }));
  box.lastChild.append(save, cancel);
  node.replaceChildren(box);
  area.focus();
}

function stopStreams() {
  for (const streamId of state.streams.keys()) sendFrame({ type: "stop", stream_id: streamId });
  if (!state.streams.size) sendFrame({ type: "stop" });
}
els.stop.addEventListener("click", stopStreams);

// ---------------------------------------------------------------- composer

els.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    els.composer.requestSubmit();
  }
});

let typingSent = false;
els.prompt.addEventListener("input", () => {
  const typing = els.prompt.value.length > 0;
  if (typing !== typingSent) { typingSent = typing; sendFrame({ type: "typing", is_typing: typing }, true); }
});

els.composer.addEventListener("submit", async (event) => {
  event.preventDefault();
  const content = els.prompt.value;
  if (!content.trim()) return;
  if (!state.roomId) await newChat();
  if (sendFrame({ type: "send_message", content, model: els.model.value })) {
    els.prompt.value = "";
    typingSent = false;
  }
});

// ---------------------------------------------------------------- WebSocket

function setConn(stateName, text) {
  els.conn.dataset.state = stateName;
  els.conn.textContent = text;
}

function sendFrame(frame, quiet) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify(frame));
    return true;
  }
  if (quiet) return false;
  if (state.switching || (state.ws && state.ws.readyState === WebSocket.CONNECTING)) {
    state.outbox.push(frame);
    return true;
  }
  notify("Not connected; reconnecting. Try again in a moment.");
  return false;
}

function disconnect() {
  const old = state.ws;
  state.ws = null;
  if (old) { old.onopen = null; old.onmessage = null; old.onclose = null; old.close(); }
}

function connect() {
  disconnect();
  if (!state.roomId) { setConn("idle", "Ready"); return; }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/chat/${state.roomId}/`);
  state.ws = ws;
  setConn(state.retry ? "reconnecting" : "connecting", state.retry ? "Reconnecting…" : "Connecting…");
  ws.onopen = () => {
    state.retry = 0;
    setConn("open", "Connected");
    // Catch up on any reply still generating: the text after what we already have, then live tokens.
    const [streamId, info] = [...state.streams.entries()][0] || [];
    ws.send(JSON.stringify(streamId ? { type: "resume", stream_id: streamId, last_seq: info.seq } : { type: "resume", last_seq: 0 }));
    for (const frame of state.outbox.splice(0)) ws.send(JSON.stringify(frame));
  };
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (state.ready) handleFrame(frame);
    else state.inbox.push(frame);
  };
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    if (event.code === 4404) { setConn("offline", "Chat not found"); return; }
    if (event.code === 4401) { location.href = `/signin/?next=${encodeURIComponent(location.pathname)}`; return; }
    state.retry += 1;
    const delay = Math.min(10000, 500 * 2 ** Math.min(state.retry - 1, 5)) * (0.8 + Math.random() * 0.4);
    setConn("reconnecting", "Reconnecting…");
    setTimeout(() => { if (state.ws === ws) connect(); }, delay);
  };
}

function liveFor(messageId) {
  if (!state.live.has(messageId)) state.live.set(messageId, { text: "", status: "streaming" });
  return state.live.get(messageId);
}

function handleFrame(frame) {
  switch (frame.type) {
    case "message_created": {
      const message = frame.message;
      const last = state.messages[state.messages.length - 1];
      if (state.messages.some((m) => m.id === message.id)) break;
      if ((last ? last.id : null) === message.parent) {
        state.messages.push({ ...message, sibling_ids: [message.id] });
        els.messages.querySelector(".empty")?.remove();
        els.messages.append(messageNode(state.messages[state.messages.length - 1]));
        els.messages.scrollTop = els.messages.scrollHeight;
        updateComposer();
      } else {
        loadHistory();  // an edit or a regeneration: a new branch
      }
      break;
    }
    case "stream_start": {
      const known = state.streams.get(frame.stream_id);
      state.streams.set(frame.stream_id, { messageId: frame.message_id, seq: known ? known.seq : 0 });
      const live = liveFor(frame.message_id);
      live.status = "streaming";
      if (!state.messages.some((m) => m.id === frame.message_id)) loadHistory();
      break;
    }
    case "token": {
      const stream = state.streams.get(frame.stream_id);
      if (!stream) break;
      if (frame.seq <= stream.seq && !frame.resumed) break;
      const live = liveFor(stream.messageId);
      // A resumed catch-up carries the text after the seq we reported; from 0 that is the whole text so far.
      live.text = frame.resumed && stream.seq === 0 ? frame.delta : live.text + frame.delta;
      stream.seq = frame.seq;
      const message = state.messages.find((m) => m.id === stream.messageId);
      if (message) {
        message.content = live.text;
        message.status = "streaming";
        renderLater(message.id);
      }
      break;
    }
    case "stream_end": {
      state.streams.delete(frame.stream_id);
      const live = state.live.get(frame.message_id);
      state.live.delete(frame.message_id);
      const message = state.messages.find((m) => m.id === frame.message_id);
      if (message) {
        // A reply that ended while we were away (its worker restarted) comes with its stored text.
        if (typeof frame.content === "string") message.content = frame.content;
        else if (live) message.content = live.text;
        message.status = frame.status;
        renderLater(message.id);
        if (frame.status !== "streaming") refreshCitations(message);
      }
      if (frame.status === "complete" && state.room && state.room.name === "New Chat") autoTitle();
      break;
    }
    case "resumed": {
      // Streams we followed that no longer run ended while the socket was down: show how they ended.
      const running = new Set(frame.streams);
      const gone = [...state.streams.entries()].filter(([id]) => !running.has(id));
      for (const [id, info] of gone) { state.streams.delete(id); state.live.delete(info.messageId); }
      if (gone.length) { loadHistory(); updateComposer(); }
      break;
    }
    case "message_deleted":
    case "branch_switched":
      loadHistory();
      break;
    case "room_updated":
      state.room = { ...state.room, ...frame.room };
      renderTitle();
      break;
    case "room_deleted":
      newChat();
      break;
    case "typing":
      els.typing.textContent = frame.is_typing ? `${frame.user} is typing…` : "";
      break;
    case "error":
      notify(frame.message);
      break;
    case "panic":
      document.getElementById("panic-banner").hidden = !frame.active;
      if (frame.active && frame.wiped) location.assign("/chat/");  // every chat is gone
      break;
    default:
      break;
  }
}

async function autoTitle() {
  try {
    state.room = await api(`rooms/${state.roomId}/title`, { method: "POST" });
    renderTitle();
    await loadRooms();
  } catch (error) { /* a title is a nicety */ }
}

// ---------------------------------------------------------------- start

(async function start() {
  await Promise.all([loadModels(), loadProjects(), loadRooms()]);
  if (state.roomId) {
    try { await openRoom(state.roomId); } catch (error) { notify(error.message); state.roomId = ""; }
  }
  if (!state.roomId) {
    if (state.rooms.length) await openRoom(state.rooms[0].id);
    else await newChat();
  }
})();
