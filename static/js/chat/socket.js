// The room's WebSocket: reconnect with backoff, resume in-flight replies, apply server frames.
import { els, notify, shell, state } from "./state.js";
import { appendMessage, renderLater, updateComposer } from "./render.js";
import { autoTitle, loadHistory, newChat, refreshMessage, renderTitle, selectRoomModel } from "./conversation.js";
import { loadRooms } from "./sidebar.js";
import { fitPrompt } from "./composer.js";

function setConn(stateName, text) {
  els.conn.dataset.state = stateName;
  els.conn.textContent = text;
}

export function sendFrame(frame, quiet) {
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

export function disconnect() {
  const old = state.ws;
  state.ws = null;
  if (old) { old.onopen = null; old.onmessage = null; old.onclose = null; old.close(); }
}

export function connect() {
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

export function handleFrame(frame) {
  switch (frame.type) {
    case "message_created": {
      const message = frame.message;
      const last = state.messages[state.messages.length - 1];
      if (state.messages.some((m) => m.id === message.id)) break;
      if (message.role === "user" && !message.metadata && state.sentFiles && state.sentFiles.length
          && message.author === shell.dataset.username) {
        message.metadata = { files: state.sentFiles };
      }
      if (message.role === "user") { state.sentFiles = null; state.unsent = null; }
      if ((last ? last.id : null) === message.parent) {
        state.messages.push({ ...message, sibling_ids: [message.id] });
        appendMessage(state.messages[state.messages.length - 1]);
        if (last) renderLater(last.id);  // no longer the last message: Continue leaves it
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
        if (typeof frame.finish_reason === "string") message.finish_reason = frame.finish_reason;
        renderLater(message.id);
        if (frame.status !== "streaming") refreshMessage(message);
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
    case "room_updated": {
      // A change made in another tab or through the API: name, model and settings follow here too.
      const modelChanged = state.room && frame.room.model !== state.room.model;
      state.room = { ...state.room, ...frame.room };
      renderTitle();
      if (modelChanged && state.modelWrites === 0) { state.pickerTouched = false; selectRoomModel(true); }
      loadRooms();
      break;
    }
    case "room_deleted":
      newChat();
      break;
    case "typing":
      els.typing.textContent = frame.is_typing ? `${frame.user} is typing…` : "";
      break;
    case "error": {
      // A failed reply keeps its reason in its own bubble (and in the database); other errors are toasts.
      const stream = frame.stream_id && state.streams.get(frame.stream_id);
      const message = stream && state.messages.find((m) => m.id === stream.messageId);
      if (message) { message.error = frame.message; message.status = "error"; renderLater(message.id); } else notify(frame.message);
      // A send the server refused (panic, a read-only room, a limit) gives its text back to an empty composer.
      if (!message && state.unsent !== null && !els.prompt.value) { els.prompt.value = state.unsent; fitPrompt(); }
      state.unsent = null;
      break;
    }
    case "panic":
      document.getElementById("panic-banner").hidden = !frame.active;
      if (frame.active && frame.wiped) location.assign("/chat/");  // every chat is gone
      break;
    default:
      break;
  }
}
