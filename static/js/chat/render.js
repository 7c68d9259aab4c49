// Rendering of the conversation: Markdown through DOMPurify for replies, plain text for user messages.
import { marked } from "../../vendor/marked.esm.js";
import DOMPurify from "../../vendor/purify.es.mjs";
import hljs from "../../vendor/highlight.min.js";
import katex from "../../vendor/katex.mjs";
import { api } from "../api.js";
import { els, notify, shell, state } from "./state.js";
import { sendFrame } from "./socket.js";
import { openRoom, rate, startEdit, stopStreams, switchBranch, withOptions } from "./conversation.js";
import { icon } from "./icons.js";
import { confirmDialog } from "./dialogs.js";

// Math as MathML: the browser lays it out natively, so no inline styles (which the CSP forbids) are needed.
function tex(source, displayMode) {
  return katex.renderToString(source, { displayMode, output: "mathml", throwOnError: false });
}
marked.use({
  gfm: true,
  breaks: true,
  extensions: [
    {
      name: "blockMath", level: "block",
      start: (src) => src.indexOf("$$"),
      tokenizer(src) {
        const match = /^\$\$\s*([\s\S]+?)\s*\$\$(?:\n|$)/.exec(src);
        if (match) return { type: "blockMath", raw: match[0], text: match[1] };
      },
      renderer: (token) => `<div class="math-block">${tex(token.text, true)}</div>`,
    },
    {
      // $x$ but not "$5 and $10": no space inside the dollars and no digit right after the closing one.
      name: "inlineMath", level: "inline",
      start: (src) => src.indexOf("$"),
      tokenizer(src) {
        const match = /^\$\$([^$]+?)\$\$|^\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\d)/.exec(src);
        if (match) return { type: "inlineMath", raw: match[0], text: match[1] || match[2], display: Boolean(match[1]) };
      },
      renderer: (token) => tex(token.text, token.display),
    },
  ],
});
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
  box.querySelectorAll("pre code").forEach((block) => { hljs.highlightElement(block); decorateCode(block); });
  return box;
}

// Each code block gets a header with its language and a copy button for just that block.
function decorateCode(code) {
  const pre = code.parentElement;
  const language = ([...code.classList].find((name) => name.startsWith("language-")) || "").slice(9);
  const frame = Object.assign(document.createElement("div"), { className: "codeblock" });
  const head = Object.assign(document.createElement("div"), { className: "codeblock-head" });
  head.append(Object.assign(document.createElement("span"), { className: "lang", textContent: language || "text" }));
  const copy = actionButton("Copy code", "Copy", (event) => copyToClipboard(code.textContent, event.currentTarget));
  head.append(copy);
  pre.replaceWith(frame);
  frame.append(head, pre);
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

// A quiet icon button: the label is for screen readers and the tooltip, the icon for the eye.
export function iconButton(label, name, handler, pressed) {
  const button = actionButton(label, "", handler, pressed);
  button.classList.add("act");
  button.append(icon(name));
  return button;
}

export function announce(text) {
  const region = document.getElementById("announce");
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 30);
}

const URL_PATTERN = /https?:\/\/[^\s<>"'`]+[^\s<>"'`.,;:!?)\]]/g;

// Your own text stays text; only http(s) addresses in it become links, built as elements (never as HTML).
function linkified(text) {
  const box = document.createElement("div");
  box.className = "content";
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    box.append(document.createTextNode(text.slice(last, match.index)));
    const link = Object.assign(document.createElement("a"), { href: match[0], textContent: match[0], target: "_blank", rel: "noopener noreferrer" });
    box.append(link);
    last = match.index + match[0].length;
  }
  box.append(document.createTextNode(text.slice(last)));
  return box;
}

export function messageNode(message) {
  const node = document.createElement("article");
  node.className = `msg ${message.role}`;
  node.dataset.messageId = message.id;
  node.id = `message-${message.id}`;
  node.dataset.status = message.status;
  node.tabIndex = -1;
  if (message.status === "streaming") node.classList.add("streaming");
  const someoneElse = message.role === "user" && message.author && message.author !== shell.dataset.username;
  node.setAttribute("aria-label", message.role !== "user" ? "Assistant reply" : someoneElse ? `Message from ${message.author}` : "Your message");
  if (someoneElse) {
    node.classList.add("other");
    node.append(Object.assign(document.createElement("div"), { className: "author", textContent: message.author }));
  }
  node.append(message.role === "assistant" ? markdown(message.content) : linkified(message.content || ""));
  if (message.role === "assistant" && message.status === "error") node.append(errorNode(message));
  const sent = (message.metadata && message.metadata.files) || [];
  if (message.role === "user" && sent.length) node.append(sentFilesNode(sent));
  const citations = (message.metadata && message.metadata.citations) || [];
  if (citations.length) node.append(citationsNode(citations));
  node.append(metaNode(message));
  if (state.details.has(message.id)) node.append(detailsNode(message));
  return node;
}

function number(value, digits = 0) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

function detailsNode(message) {
  const list = Object.assign(document.createElement("dl"), { className: "details", id: `details-${message.id}` });
  const rows = [
    ["Model", message.model || "—"],
    ["Time", message.created_at ? new Date(message.created_at).toLocaleString() : "—"],
    ["Prompt tokens", number(message.prompt_tokens)],
    ["Completion tokens", number(message.completion_tokens)],
    ["Time to first token", message.time_to_first_token_ms == null ? "—" : `${number(message.time_to_first_token_ms)} ms`],
    ["Tokens per second", number(message.tokens_per_second, 1)],
  ];
  for (const [term, value] of rows) {
    list.append(Object.assign(document.createElement("dt"), { textContent: term }),
      Object.assign(document.createElement("dd"), { textContent: value }));
  }
  return list;
}

function toggleDetails(message) {
  if (state.details.has(message.id)) state.details.delete(message.id); else state.details.add(message.id);
  renderLater(message.id);
}

function errorNode(message) {
  const box = Object.assign(document.createElement("div"), { className: "reply-error" });
  box.append(Object.assign(document.createElement("p"), { textContent: message.error || "The reply failed before it finished." }));
  if (!state.readOnly) box.append(actionButton("Retry", "Retry", () => sendFrame(withOptions({ type: "regenerate", message_id: message.id, model: message.model || els.model.value }))));
  return box;
}

// The files sent with a message, by name (their ids stay with the message for regenerations and edits).
function sentFilesNode(files) {
  const list = Object.assign(document.createElement("ul"), { className: "sent-files" });
  list.setAttribute("aria-label", "Files sent");
  for (const file of files) {
    const item = Object.assign(document.createElement("li"), { className: "chip" });
    item.append(icon("clip"), document.createTextNode(file.name || "file"));
    list.append(item);
  }
  return list;
}

function citationsNode(citations) {
  const list = Object.assign(document.createElement("div"), { className: "citations" });
  list.setAttribute("aria-label", "Sources");
  for (const citation of citations) {
    list.append(actionButton(`Open source ${citation.n}`, `[${citation.n}] ${citationText(citation)}`,
      () => openCitation(citation)));
  }
  return list;
}

function citationText(citation) {
  if (citation.kind === "message") return citation.label;  // the chat, the role and the day
  const where = citation.page ? `p. ${citation.page}` : `lines ${citation.line_start}–${citation.line_end}`;
  const elsewhere = citation.room_id && citation.room_id !== state.roomId ? `, in "${citation.room_name}"` : "";
  return `${citation.file_name}, ${where}${elsewhere}`;
}

// A source from another chat opens that chat, at the message or with the passage shown.
export async function openCitation(citation) {
  const roomId = citation.room_id || state.roomId;
  if (citation.kind === "message") {
    if (roomId !== state.roomId) await openRoom(roomId);
    highlightMessage(citation.message_id);
  } else {
    openPassage(roomId, citation);
  }
}

function metaNode(message) {
  const meta = document.createElement("div");
  meta.className = "meta";
  const siblings = message.sibling_ids || [message.id];
  if (siblings.length > 1) {
    const index = siblings.indexOf(message.id);
    const previous = iconButton("Previous version", "forward", () => switchBranch(siblings[index - 1]));
    previous.classList.add("flip");
    const next = iconButton("Next version", "forward", () => switchBranch(siblings[index + 1]));
    previous.disabled = index === 0;
    next.disabled = index === siblings.length - 1;
    meta.append(previous,
      Object.assign(document.createElement("span"), { className: "branch", textContent: `${index + 1}/${siblings.length}` }),
      next);
  }
  if (message.created_at) {
    const when = new Date(message.created_at);
    const time = Object.assign(document.createElement("time"), { className: "when", dateTime: when.toISOString(),
      textContent: stamp(when), title: when.toLocaleString() });
    meta.prepend(time);
  }
  const actions = Object.assign(document.createElement("span"), { className: "actions" });
  meta.append(actions);
  actions.append(iconButton("Copy", "copy", (event) => copyText(message, event.currentTarget)));
  if (state.readOnly) {  // someone else's chat: reading, copying and details only
    if (message.role === "assistant" && message.status !== "streaming") {
      const details = iconButton("Details", "info", () => toggleDetails(message), state.details.has(message.id));
      if (state.details.has(message.id)) details.setAttribute("aria-controls", `details-${message.id}`);
      actions.append(details);
    }
    return meta;
  }
  if (message.role === "user") {
    actions.append(iconButton("Edit", "edit", () => startEdit(message)));
  } else if (message.status === "streaming") {
    actions.append(iconButton("Stop", "stop", () => stopStreams()));
  } else {
    actions.append(iconButton("Regenerate", "regenerate", () => regenerate(message)));
    const details = iconButton("Details", "info", () => toggleDetails(message), state.details.has(message.id));
    // aria-controls may only name an element that exists, and the list is rendered only while open.
    if (state.details.has(message.id)) details.setAttribute("aria-controls", `details-${message.id}`);
    actions.append(details);
    if (message.status !== "error") {
      actions.append(
        iconButton("Good reply", "up", () => rate(message, message.rating === 1 ? 0 : 1), message.rating === 1),
        iconButton("Bad reply", "down", () => rate(message, message.rating === -1 ? 0 : -1), message.rating === -1),
      );
    }
    if (message.status !== "complete" && message.status !== "error") {
      meta.append(Object.assign(document.createElement("span"), { className: "status", textContent: message.status }));
    }
    if (canContinue(message)) {
      const more = actionButton("Continue this reply", "Continue", () => continueReply(message));
      more.classList.add("continue");
      meta.append(more);
    }
  }
  if (message.status !== "streaming") actions.append(iconButton("Delete", "trash", () => deleteMessage(message)));
  return meta;
}

// The time of day for today's messages, the date as well for older ones.
function stamp(when) {
  const today = new Date().toDateString() === when.toDateString();
  const time = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return today ? time : `${when.toLocaleDateString([], { month: "short", day: "numeric" })}, ${time}`;
}

// A reply that ended at its token limit can be continued. The server has no continuation of a stored reply,
// so Continue sends a short follow-up asking the model to go on from where it stopped; the model sees its own
// cut reply in the conversation.
export const CONTINUE_PROMPT = "Continue exactly where your last reply stopped, without repeating it.";

// Only the last reply, and only when the server stored that it reached its max tokens (`finish_reason`).
function canContinue(message) {
  if (message.role !== "assistant" || message !== state.messages[state.messages.length - 1]) return false;
  return message.status === "complete" && message.finish_reason === "length";
}

function continueReply(message) {
  sendFrame(withOptions({ type: "send_message", content: CONTINUE_PROMPT, model: els.model.value }));
}

async function deleteMessage(message) {
  const what = message.role === "user" ? "your message" : "this reply";
  if (!await confirmDialog("Delete message", `Delete ${what}? Messages after it in this branch go with it.`)) return;
  sendFrame({ type: "delete_message", message_id: message.id });
}

function regenerate(message) {
  sendFrame(withOptions({ type: "regenerate", message_id: message.id, model: els.model.value }));
}

// Messages are one Tab stop: Tab lands on one message (then its own buttons), arrows move between messages.
function tameTabStops(node) {
  if (node.querySelector(".edit-box")) return;
  node.querySelectorAll("button, a[href]").forEach((control) => { control.tabIndex = -1; });
}

function setRoving(node) {
  els.messages.querySelectorAll(".msg[tabindex='0']").forEach((other) => { if (other !== node) other.tabIndex = -1; });
  if (node) node.tabIndex = 0;
}

els.messages.addEventListener("focusin", (event) => {
  const node = event.target.closest(".msg");
  if (!node) return;
  setRoving(node);
  node.querySelectorAll("button, a[href]").forEach((control) => { control.tabIndex = 0; });
});
els.messages.addEventListener("focusout", (event) => {
  const node = event.target.closest(".msg");
  if (node && !node.contains(event.relatedTarget)) tameTabStops(node);
});
els.messages.addEventListener("keydown", (event) => {
  if (event.key !== "ArrowUp" && event.key !== "ArrowDown") return;
  if (!event.target.classList.contains("msg")) return;
  const sibling = event.key === "ArrowUp" ? event.target.previousElementSibling : event.target.nextElementSibling;
  if (sibling && sibling.classList.contains("msg")) { event.preventDefault(); sibling.focus(); }
});

export function renderMessages() {
  els.messages.replaceChildren();
  if (!state.messages.length) els.messages.append(emptyState());
  for (const message of state.messages) els.messages.append(messageNode(message));
  els.messages.querySelectorAll(".msg").forEach(tameTabStops);
  setRoving(els.messages.querySelector(".msg:last-of-type"));
  updateComposer();
  els.messages.scrollTop = els.messages.scrollHeight;
}

// An empty chat: the model that will answer and a few prompts to start from (a click sends one).
export const STARTERS = [
  "Explain a concept simply",
  "Write a short Python function",
  "Summarise a text I paste",
  "Help me plan my week",
];

function emptyState() {
  const box = Object.assign(document.createElement("div"), { className: "empty" });
  box.append(Object.assign(document.createElement("h2"), { textContent: "Ask anything to start." }));
  const model = els.model.selectedOptions[0];
  const line = Object.assign(document.createElement("p"), { className: "empty-model" });
  line.append("Model: ", Object.assign(document.createElement("strong"), { textContent: model ? model.text : "the default" }));
  box.append(line);
  const starters = Object.assign(document.createElement("div"), { className: "starters" });
  starters.setAttribute("role", "group");
  starters.setAttribute("aria-label", "Starter prompts");
  for (const text of STARTERS) {
    const button = Object.assign(document.createElement("button"), { type: "button", textContent: text });
    button.addEventListener("click", () => {
      els.prompt.value = text;
      els.prompt.focus();
      els.composer.requestSubmit();
    });
    starters.append(button);
  }
  box.append(starters);
  const keys = Object.assign(document.createElement("p"), { className: "hint" });
  keys.append("Press ", Object.assign(document.createElement("kbd"), { textContent: "?" }), " for keyboard shortcuts.");
  box.append(keys);
  return box;
}

// The model line of an empty chat follows the picker.
els.model.addEventListener("change", () => {
  const line = els.messages.querySelector(".empty-model strong");
  if (line && els.model.selectedOptions[0]) line.textContent = els.model.selectedOptions[0].text;
});

export function appendMessage(message) {
  els.messages.querySelector(".empty")?.remove();
  const node = messageNode(message);
  els.messages.append(node);
  tameTabStops(node);
  setRoving(node);
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
    if (!message || !old) continue;
    const node = messageNode(message);
    const hadFocus = old.contains(document.activeElement);
    node.tabIndex = old.tabIndex;
    old.replaceWith(node);
    if (!hadFocus) tameTabStops(node);
    else node.focus();
  }
  pendingRender.clear();
  updateComposer();
  if (nearBottom) els.messages.scrollTop = els.messages.scrollHeight;
}

export function updateComposer() {
  const streaming = state.messages.some((m) => m.status === "streaming");
  els.stop.hidden = !streaming || state.readOnly;
  els.send.hidden = streaming;
}


export async function copyToClipboard(text, button) {
  try { await navigator.clipboard.writeText(text); } catch (e) {
    const area = Object.assign(document.createElement("textarea"), { value: text });
    document.body.append(area); area.select(); document.execCommand("copy"); area.remove();
  }
  announce("Copied");
  if (!button) return;
  // The button itself says it worked for a moment, for those who were looking at it.
  const label = button.getAttribute("aria-label");
  button.classList.add("done");
  button.setAttribute("aria-label", "Copied");
  button.title = "Copied";
  setTimeout(() => { button.classList.remove("done"); button.setAttribute("aria-label", label); button.title = label; }, 1500);
}

function copyText(message, button) {
  return copyToClipboard(message.content, button);
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
      Object.assign(document.createElement("pre"), { textContent: passage.text, tabIndex: 0 }),  // text stays text; scrolls by keyboard
      close,
    );
    document.body.append(dialog);
    dialog.showModal();
  } catch (error) {
    notify(error.message || "That passage is no longer available.");
  }
}
