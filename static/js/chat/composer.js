// The input bar: Enter sends, Shift+Enter adds a line, typing is announced, the model picker is remembered.
import { els, notify, shell, state } from "./state.js";
import { sendFrame } from "./socket.js";
import { isStreaming, newChat, stopStreams, updateRoom, withOptions } from "./conversation.js";
import { pending, takeFiles, uploading } from "./uploads.js";
import "./features.js";

els.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    els.composer.requestSubmit();
  }
});

// The box grows with its text up to a third of the window, then scrolls.
export function fitPrompt() {
  els.prompt.style.height = "auto";
  els.prompt.style.height = `${Math.min(els.prompt.scrollHeight + 2, Math.round(window.innerHeight / 3))}px`;
}

// Touch keyboards have no Shift+Enter habit: the placeholder only says what applies.
const coarse = window.matchMedia("(pointer: coarse), (max-width: 720px)");
function placeholder() {
  if (state.readOnly) els.prompt.placeholder = `Only ${state.room.owner} can write in this chat; you can read it.`;
  else els.prompt.placeholder = coarse.matches ? "Message" : "Send a message (Enter to send, Shift+Enter for a new line)";
}

// A chat of someone else's (a founder reads the team's rooms) can be read but not written in.
export function applyReadOnly() {
  const owner = state.room && state.room.owner;
  state.readOnly = Boolean(owner && owner !== shell.dataset.username);
  els.composer.dataset.readOnly = String(state.readOnly);
  for (const control of els.composer.querySelectorAll("textarea, button, input, select")) control.disabled = state.readOnly;
  placeholder();
}
coarse.addEventListener("change", placeholder);
placeholder();

let typingSent = false;
els.prompt.addEventListener("input", () => {
  fitPrompt();
  const typing = els.prompt.value.length > 0;
  if (typing !== typingSent) { typingSent = typing; sendFrame({ type: "typing", is_typing: typing }, true); }
});

els.composer.addEventListener("submit", async (event) => {
  event.preventDefault();
  const content = els.prompt.value;
  if (!content.trim()) return;
  if (uploading()) { notify("Wait for the files to finish uploading, or remove them."); return; }
  if (!state.roomId) await newChat();
  const frame = { type: "send_message", content, model: els.model.value };
  const files = pending.filter((item) => item.id).map((item) => ({ id: item.id, name: item.name }));
  if (files.length) frame.files = files.map((file) => file.id);
  if (els.searchAllRooms.checked) frame.search_all_rooms = true;
  if (sendFrame(withOptions(frame))) {
    state.sentFiles = files;  // shown under the message as soon as it comes back
    state.unsent = content;
    takeFiles();
    els.prompt.value = "";
    fitPrompt();
    typingSent = false;
  }
});

els.stop.addEventListener("click", stopStreams);

els.model.addEventListener("change", () => {
  state.pickerTouched = true;
  if (state.roomId && !state.switching) {
    // While this tab's own choices are on their way, their echoes must not turn the picker back.
    state.modelWrites += 1;
    updateRoom(state.roomId, { model: els.model.value }).finally(() => { state.modelWrites -= 1; });
  }
});

// Escape stops a reply that is generating, unless a dialog, a menu or the phone sidebar takes it first.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.defaultPrevented || !isStreaming()) return;
  if (document.querySelector("dialog[open]") || els.sidebar.classList.contains("open")) return;
  if (event.target.closest && event.target.closest(".edit-box")) return;
  event.preventDefault();
  stopStreams();
});
