// The chat page's entry point: rooms over the REST API, live replies over the WebSocket.
// Every model or user text goes through marked + DOMPurify (assistant) or textContent (user): never raw HTML.
import { els, notify, state } from "./state.js";
import "./composer.js";
import "./settings.js";
import { loadModels, newChat, openRoom } from "./conversation.js";
import { loadProjects, loadRooms } from "./sidebar.js";
import { markLoaded } from "./picker.js";
import { highlightMessage, openPassage } from "./render.js";

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

(async function start() {
  // Links from search results and sources open a chat at a message (?message=) or a file's passage.
  const target = new URLSearchParams(window.location.search);
  await Promise.all([loadModels().then(markLoaded), loadProjects(), loadRooms()]);
  if (state.roomId) {
    try {
      await openRoom(state.roomId);
      if (target.get("message")) highlightMessage(target.get("message"));
      else if (target.get("file")) openPassage(state.roomId, { file_id: target.get("file"), chunk: target.get("chunk") || "0" });
    } catch (error) { notify(error.message); state.roomId = ""; }
  }
  if (!state.roomId) {
    if (state.rooms.length) await openRoom(state.rooms[0].id);
    else await newChat();
  }
})();

// The skip link lands in the composer itself, not just near it.
document.querySelector(".skip-link").addEventListener("click", (event) => { event.preventDefault(); els.prompt.focus(); });
