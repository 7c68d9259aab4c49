// The page's shared state and its fixed elements, imported by every chat module.

export const shell = document.getElementById("shell");

export const els = {
  sidebar: document.getElementById("sidebar"),
  roomList: document.getElementById("room-list"),
  search: document.getElementById("room-search"),
  projectFilter: document.getElementById("project-filter"),
  newProject: document.getElementById("new-project"),
  renameProject: document.getElementById("rename-project"),
  deleteProject: document.getElementById("delete-project"),
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
  searchAllRooms: document.getElementById("search-all-rooms"),
  typing: document.getElementById("typing"),
  toasts: document.getElementById("toasts"),
};

export const state = {
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
  hits: [],
  details: new Set(),    // replies whose details are open
  modelWrites: 0,        // model changes this tab has sent and not yet seen answered
  readOnly: false,       // the open room is someone else's: it can be read, not written in
  unsent: null,          // the text of the last send until the server takes it (its message comes back)
};

export function notify(message) {
  const note = document.createElement("p");
  note.className = "error toast";
  note.setAttribute("role", "alert");
  note.textContent = message;
  els.toasts.append(note);
  setTimeout(() => note.remove(), 8000);
}
