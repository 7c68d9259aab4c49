// The input bar: Enter sends, Shift+Enter adds a line, typing is announced, the model picker is remembered.
import { els, state } from "./state.js";
import { sendFrame } from "./socket.js";
import { newChat, stopStreams, updateRoom } from "./conversation.js";

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

els.stop.addEventListener("click", stopStreams);

els.model.addEventListener("change", () => {
  state.pickerTouched = true;
  if (state.roomId && !state.switching) updateRoom(state.roomId, { model: els.model.value });
});
