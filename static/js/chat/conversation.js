// The open room: switching rooms, its history, branches, ratings, edits and the model picker.
import { api } from "../api.js";
import { els, notify, state } from "./state.js";
import { connect, disconnect, handleFrame, sendFrame } from "./socket.js";
import { actionButton, renderLater, renderMessages } from "./render.js";
import { loadRooms, renderRooms, setSidebar } from "./sidebar.js";
import { resetUploads } from "./uploads.js";
import { applyReadOnly } from "./composer.js";

export const GENERATION_KEYS = ["temperature", "top_p", "top_k", "repeat_penalty", "max_tokens"];

// Every reply started from this page uses the room's stored generation parameters; the room's system
// prompt is applied by the server itself.
export function withOptions(frame) {
  const stored = (state.room && state.room.metadata && state.room.metadata.generation) || {};
  const options = {};
  for (const key of GENERATION_KEYS) if (stored[key] !== undefined && stored[key] !== null) options[key] = stored[key];
  return Object.keys(options).length ? { ...frame, options } : frame;
}

export function renderTitle() {
  els.title.textContent = state.room ? state.room.name : "New chat";
  document.title = `${els.title.textContent} · Local LLM Chat`;
}

export async function updateRoom(id, changes) {
  try {
    const room = await api(`rooms/${id}`, { method: "PATCH", body: changes });
    if (id === state.roomId) { state.room = room; renderTitle(); }
    await loadRooms();
  } catch (error) { notify(error.message); }
}

export async function openRoom(id, { keepQueued = false } = {}) {
  // Switch everything to the new room at once: sends made from now on queue for its socket, and frames
  // wait in the inbox until its history is on screen. A new chat keeps what was typed (and the model
  // picked) while it was being created.
  state.roomId = id;
  state.ready = false;
  state.inbox = [];
  state.messages = [];
  state.streams.clear();
  state.live.clear();
  if (!keepQueued) { state.outbox = []; state.pickerTouched = false; resetUploads(); }
  history.replaceState(null, "", `/chat/${id}/`);
  setSidebar(false);
  renderMessages();
  renderRooms();
  connect();
  state.room = await api(`rooms/${id}`);
  renderTitle();
  applyReadOnly();
  if (state.pickerTouched && els.model.value && els.model.value !== state.room.model) {
    updateRoom(id, { model: els.model.value });
  }
  selectRoomModel();
  await loadHistory();
  state.ready = true;
  for (const frame of state.inbox.splice(0)) handleFrame(frame);
  if (!els.sidebar.contains(document.activeElement) || window.matchMedia("(min-width: 721px)").matches) els.prompt.focus();
}

export async function loadHistory() {
  if (!state.roomId) return;
  const data = await api(`rooms/${state.roomId}/history?limit=200`);
  state.messages = data.results;
  rememberBranch();
  for (const message of state.messages) {
    const live = state.live.get(message.id);
    if (live && live.text.length >= message.content.length) { message.content = live.text; message.status = live.status; }
  }
  renderMessages();
}

export async function newChat() {
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

export async function autoTitle() {
  try {
    state.room = await api(`rooms/${state.roomId}/title`, { method: "POST" });
    renderTitle();
    await loadRooms();
  } catch (error) { /* a title is a nicety */ }
}

export async function rate(message, rating) {
  try {
    const updated = await api(`rooms/${state.roomId}/messages/${message.id}/rating`, { method: "POST", body: { rating } });
    message.rating = updated.rating;
    renderLater(message.id);
  } catch (error) { notify(error.message); }
}

// Which leaf you last looked at under each message of a room, so going back to an earlier version of a
// message shows the reply you picked there rather than the newest one.
function branchMemory() {
  try { return JSON.parse(localStorage.getItem(`branches:${state.roomId}`) || "{}"); } catch { return {}; }
}

function rememberBranch() {
  if (!state.messages.length) return;
  const memory = branchMemory();
  const leaf = state.messages[state.messages.length - 1].id;
  for (const message of state.messages) memory[message.id] = leaf;
  try { localStorage.setItem(`branches:${state.roomId}`, JSON.stringify(memory)); } catch { /* memory is a nicety */ }
}

export async function switchBranch(messageId) {
  if (!messageId) return;
  const remembered = branchMemory()[messageId];
  try {
    try {
      await api(`rooms/${state.roomId}/branch`, { method: "POST", body: { message_id: remembered || messageId } });
    } catch (error) {
      if (!remembered || error.status !== 404) throw error;
      await api(`rooms/${state.roomId}/branch`, { method: "POST", body: { message_id: messageId } });  // that leaf is gone
    }
    await loadHistory();
  } catch (error) { notify(error.message); }
}

export function startEdit(message) {
  const node = els.messages.querySelector(`[data-message-id="${message.id}"]`);
  const box = document.createElement("div");
  box.className = "edit-box";
  const area = document.createElement("textarea");
  area.value = message.content;
  area.setAttribute("aria-label", "Edit message");
  const save = actionButton("Save and submit", "Save & submit", () => {
    if (area.value.trim()) sendFrame(withOptions({ type: "edit_message", message_id: message.id, content: area.value, model: els.model.value }));
  });
  const cancel = actionButton("Cancel editing", "Cancel", () => renderMessages());
  area.addEventListener("keydown", (event) => {
    if (event.key === "Escape") renderMessages();
    // As in the message box: Enter submits the edit, Shift+Enter adds a line.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); save.click(); }
  });
  box.append(area, Object.assign(document.createElement("div"), { className: "meta" }));
  box.lastChild.append(save, cancel);
  node.replaceChildren(box);
  area.focus();
}

export function stopStreams() {
  // The Stop button disappears with the reply: the composer keeps the focus instead of the page body.
  const hadFocus = els.stop.contains(document.activeElement) || els.messages.contains(document.activeElement);
  for (const streamId of state.streams.keys()) sendFrame({ type: "stop", stream_id: streamId });
  if (!state.streams.size) sendFrame({ type: "stop" });
  if (hadFocus || document.activeElement === document.body) els.prompt.focus();
}

export function isStreaming() {
  return state.messages.some((m) => m.status === "streaming");
}

export async function refreshMessage(message) {
  // The stored reply carries what the stream's end frame does not: its error, citations, counts and timings.
  try {
    const results = (await api(`rooms/${state.roomId}/history?limit=200`)).results;
    const fresh = results.find((m) => m.id === message.id);
    if (fresh) { Object.assign(message, { ...fresh, content: message.content, sibling_ids: message.sibling_ids }); renderLater(message.id); }
    // The question's metadata (the files sent with it) is not in the live frames: another tab takes it from here.
    const parent = state.messages.find((m) => m.id === message.parent);
    const storedParent = parent && results.find((m) => m.id === parent.id);
    if (storedParent && JSON.stringify(storedParent.metadata) !== JSON.stringify(parent.metadata)) {
      parent.metadata = storedParent.metadata;
      renderLater(parent.id);
    }
  } catch { /* the reply stays as streamed */ }
}

// ---------------------------------------------------------------- models

export async function loadModels() {
  let servers = [];
  try {
    ({ results: state.models, servers } = await api("chat/models"));
  } catch (error) { state.models = []; }
  els.model.replaceChildren();
  for (const model of state.models) {
    const option = new Option(`${model.name} (${model.provider})`, model.qualified_name);
    if (model.default) option.dataset.default = "true";
    els.model.append(option);
  }
  // A down server's models are missing from the list, so the picker says which server and why.
  for (const server of servers.filter((entry) => !entry.ok)) {
    const option = new Option(`${server.server} is unreachable: ${server.error}`, "");
    option.disabled = true;
    option.dataset.down = "true";
    els.model.append(option);
  }
  selectRoomModel();
}

export function selectRoomModel(force = false) {
  if (state.pickerTouched && !force) return;
  const wanted = state.room && state.room.model;
  const match = state.models.find((m) => m.name === wanted || m.qualified_name === wanted);
  const fallback = state.models.find((m) => m.default);
  if (match) els.model.value = match.qualified_name;
  else if (fallback) els.model.value = fallback.qualified_name;
}
