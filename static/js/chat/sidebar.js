// The sidebar: rooms, projects, full-search hits, and its off-canvas toggle on phones.
import { api } from "../api.js";
import { els, notify, shell, state } from "./state.js";
import { highlightMessage, openPassage, sanitize } from "./render.js";
import { newChat, openRoom, updateRoom } from "./conversation.js";
import { askChoice, askText, confirmDialog } from "./dialogs.js";
import { exportRoom } from "./features.js";

export function setSidebar(open) {
  els.sidebar.classList.toggle("open", open);
  els.toggleSidebar.setAttribute("aria-expanded", String(open));
  els.toggleSidebar.setAttribute("aria-label", open ? "Hide chats" : "Show chats");
}

export async function loadProjects() {
  const data = await api("projects/?limit=200");
  const current = els.projectFilter.value;
  els.projectFilter.replaceChildren(new Option("All chats", ""));
  for (const project of data.results) els.projectFilter.append(new Option(project.name, project.id));
  els.projectFilter.value = [...els.projectFilter.options].some((o) => o.value === current) ? current : "";
  syncProjectButtons();
}

export async function loadRooms() {
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
    // A founder's search reaches the team's rooms too: those say whose they are.
    const whose = room.owner && room.owner !== shell.dataset.username ? ` (${room.owner}'s)` : "";
    const name = Object.assign(document.createElement("div"), { className: "hit-room", textContent: `${room.name}${whose}` });
    Object.assign(name.style, { fontWeight: "600", padding: ".4rem .5rem 0" });
    item.append(name);
    for (const hit of hits.slice(0, 3)) {
      const button = Object.assign(document.createElement("button"), { type: "button", className: "hit" });
      Object.assign(button.style, { display: "block", width: "100%", textAlign: "left", border: "0", background: "none",
        padding: ".3rem .5rem", fontSize: ".85rem", color: "inherit", cursor: "pointer" });
      // The server escapes the text and marks terms with <mark>; only <mark> survives here.
      button.innerHTML = sanitize(hit.snippet, { ALLOWED_TAGS: ["mark"], ALLOWED_ATTR: [] });
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

// One menu of room actions at a time, opened from a room's "⋯" button and closed by Escape or a click elsewhere.
let openMenu = null;

function closeMenu(refocus = true) {
  if (!openMenu) return;
  const { menu, trigger } = openMenu;
  openMenu = null;
  menu.remove();
  trigger.setAttribute("aria-expanded", "false");
  if (refocus && trigger.isConnected) trigger.focus();
}

function showMenu(trigger, items) {
  closeMenu(false);
  const menu = Object.assign(document.createElement("div"), { className: "menu" });
  menu.setAttribute("role", "menu");
  for (const [label, handler] of items) {
    const item = Object.assign(document.createElement("button"), { type: "button", textContent: label });
    item.setAttribute("role", "menuitem");
    item.addEventListener("click", (event) => { event.stopPropagation(); closeMenu(); handler(); });
    menu.append(item);
  }
  menu.addEventListener("keydown", (event) => {
    const entries = [...menu.querySelectorAll("[role=menuitem]")];
    const at = entries.indexOf(document.activeElement);
    if (event.key === "ArrowDown") { event.preventDefault(); entries[(at + 1) % entries.length].focus(); }
    if (event.key === "ArrowUp") { event.preventDefault(); entries[(at - 1 + entries.length) % entries.length].focus(); }
    if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); closeMenu(); }
    if (event.key === "Tab") closeMenu(false);
  });
  document.body.append(menu);
  const box = trigger.getBoundingClientRect();
  const top = Math.min(box.bottom + 4, window.innerHeight - menu.offsetHeight - 8);
  menu.style.top = `${Math.max(8, top)}px`;
  menu.style.left = `${Math.max(8, Math.min(box.right - menu.offsetWidth, window.innerWidth - menu.offsetWidth - 8))}px`;
  trigger.setAttribute("aria-expanded", "true");
  openMenu = { menu, trigger };
  menu.querySelector("[role=menuitem]").focus();
}
document.addEventListener("click", (event) => { if (openMenu && !openMenu.menu.contains(event.target)) closeMenu(false); });

function roomMenu(room, trigger) {
  showMenu(trigger, [
    ["Rename", () => renameRoom(room)],
    [room.pinned ? "Unpin" : "Pin", () => updateRoom(room.id, { pinned: !room.pinned })],
    [room.archived ? "Unarchive" : "Archive", () => updateRoom(room.id, { archived: !room.archived })],
    ["Move to project", () => moveRoom(room)],
    ["Export as Markdown", () => exportRoom(room, "markdown")],
    ["Export as JSON", () => exportRoom(room, "json")],
    ["Delete", () => deleteRoom(room)],
  ]);
}

// Rooms by their last activity: pinned ones first, then Today, Yesterday, Previous 7 days and Older.
function groupOf(room, now = new Date()) {
  if (room.pinned) return "Pinned";
  const day = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
  const at = new Date(room.last_activity || room.created_at).getTime();
  if (at >= day) return "Today";
  if (at >= day - 86400000) return "Yesterday";
  if (at >= day - 7 * 86400000) return "Previous 7 days";
  return "Older";
}

export function renderRooms() {
  els.roomList.replaceChildren();
  let group = null;
  for (const room of state.rooms) {
    const name = groupOf(room);
    if (name !== group) {
      group = name;
      const heading = Object.assign(document.createElement("li"), { className: "room-group" });
      heading.append(Object.assign(document.createElement("h2"), { textContent: name }));
      els.roomList.append(heading);
    }
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
    const more = Object.assign(document.createElement("button"), { type: "button", className: "more", textContent: "⋯" });
    more.setAttribute("aria-label", `Actions for ${room.name}`);
    more.setAttribute("aria-haspopup", "menu");
    more.setAttribute("aria-expanded", "false");
    more.title = "Actions";
    more.addEventListener("click", (event) => { event.stopPropagation(); roomMenu(room, more); });
    item.append(open, more);
    els.roomList.append(item);
  }
  renderHits();
}

async function renameRoom(room) {
  const name = await askText("Rename chat", "Name", room.name);
  if (name) updateRoom(room.id, { name });
}

async function moveRoom(room) {
  const options = [["", "No project"], ...[...els.projectFilter.options].slice(1).map((o) => [o.value, o.text])];
  const choice = await askChoice(`Move "${room.name}"`, "Project", options, room.project || "");
  if (choice) { await updateRoom(room.id, { project: choice.value || null }); await loadProjects(); }
}

async function deleteRoom(room) {
  if (!await confirmDialog("Delete chat", `Delete "${room.name}"? This cannot be undone from here.`)) return;
  try {
    await api(`rooms/${room.id}`, { method: "DELETE" });
    if (room.id === state.roomId) await newChat();
    else await loadRooms();
  } catch (error) { notify(error.message); }
}

function syncProjectButtons() {
  const chosen = Boolean(els.projectFilter.value);
  els.renameProject.hidden = !chosen;
  els.deleteProject.hidden = !chosen;
}

els.search.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && state.hits && state.hits.length) { event.preventDefault(); openHit(state.hits[0]); }
});
let searchTimer = null;
els.search.addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(loadRooms, 200); });
els.projectFilter.addEventListener("change", () => { syncProjectButtons(); loadRooms(); });
els.showArchived.addEventListener("change", loadRooms);
els.newProject.addEventListener("click", async () => {
  const name = await askText("New project", "Name", "", "Create");
  if (!name) return;
  try {
    const project = await api("projects/", { method: "POST", body: { name } });
    await loadProjects();
    els.projectFilter.value = project.id;
    syncProjectButtons();
    await loadRooms();
  } catch (error) { notify(error.message); }
});
els.renameProject.addEventListener("click", async () => {
  const option = els.projectFilter.selectedOptions[0];
  const name = await askText("Rename project", "Name", option.text);
  if (!name) return;
  try {
    await api(`projects/${option.value}`, { method: "PATCH", body: { name } });
    await loadProjects();
  } catch (error) { notify(error.message); }
});
els.deleteProject.addEventListener("click", async () => {
  const option = els.projectFilter.selectedOptions[0];
  if (!await confirmDialog("Delete project", `Delete the project "${option.text}"? Its chats stay, outside any project.`)) return;
  try {
    await api(`projects/${option.value}`, { method: "DELETE" });
    els.projectFilter.value = "";
    await loadProjects();
    await loadRooms();
  } catch (error) { notify(error.message); }
});
els.newChat.addEventListener("click", newChat);

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
