// Applies the saved (or system) colour theme before the first paint, so pages never flash. A signed-in
// user's choice is stored with the account (data-theme-preference), so it follows them across browsers.
(function () {
  var root = document.documentElement;
  var account = root.dataset.themePreference;
  var saved = null;
  try { saved = localStorage.getItem("theme"); } catch (e) { /* storage may be blocked */ }
  if (account === "light" || account === "dark") saved = account;
  else if (account === "system") saved = null;
  var dark = saved ? saved === "dark" : window.matchMedia("(prefers-color-scheme: dark)").matches;
  root.dataset.theme = dark ? "dark" : "light";

  // The header toggles of the chat and staff pages flip the theme; this saves the flip to the account too.
  if (!account) return;
  document.addEventListener("click", function (event) {
    if (!event.target.closest || !event.target.closest("#theme-toggle")) return;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    root.dataset.themePreference = root.dataset.theme;
    fetch("/api/v1/auth/preferences", {
      method: "PATCH", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": match ? decodeURIComponent(match[1]) : "" },
      body: JSON.stringify({ theme: root.dataset.theme }),
    }).catch(function () { /* offline: this browser still remembers it */ });
  });
})();
