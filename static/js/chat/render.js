// Rendering of the conversation: Markdown through DOMPurify for replies, plain text for user messages.
import { marked } from "../../vendor/marked.esm.js";
import DOMPurify from "../../vendor/purify.es.mjs";
import hljs from "../../vendor/highlight.min.js";
import { api } from "../api.js";
import { els, notify, state } from "./state.js";
import { sendFrame } from "./socket.js";
import { rate, startEdit, stopStreams, switchBranch } from "./conversation.js";

marked.setOptions({ gfm: true, breaks: true });
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") { node.setAttribute("target", "_blank"); node.setAttribute("rel", "noopener noreferrer"); }
});

export function sanitize(html, options) {
  return DOMPurify.sanitize(html, options);
}

export function markdown(text) {
  const html = DOMPurify.sanitize(marked.parse(text || ""));
  const box = document.createElement("div");
  box.className = "content";
  box.innerHTML = html;
  box.querySelectorAll("pre code").forEach((block) => hljs.highlightElement(block));
  return box;
}

export function actionButton(label, text, handler, pressed) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = text;
  button.setAttribute("aria-label", label);
  button.title = label;
  if (pressed !== undefined) button.setAttribute("aria-pressed", String(pressed));
  button.addEventListener("click", handler);
  return button;
}

export function messageNode(message) {
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

export function renderMessages() {
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

export function appendMessage(message) {
  els.messages.querySelector(".empty")?.remove();
  els.messages.append(messageNode(message));
  els.messages.scrollTop = els.messages.scrollHeight;
  updateComposer();
}

const pendingRender = new Set();
export function renderLater(messageId) {
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

export function updateComposer() {
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

export function highlightMessage(id) {
  const node = els.messages.querySelector(`[data-message-id="${CSS.escape(id)}"]`);
  if (!node) return;
  node.scrollIntoView({ block: "center" });
  node.style.outline = "2px solid #f2c94c";  // the hit, marked for a moment
  setTimeout(() => { node.style.outline = ""; }, 2500);
}

export async function openPassage(roomId, citation) {
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
