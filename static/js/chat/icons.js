// Inline SVG icons for the quiet message actions; drawn here so they follow the text colour in both themes.
const PATHS = {
  copy: "M9 9h10v11H9z M5 15V4h10",
  check: "M5 12l4 4 10-10",
  edit: "M4 20h4L19 9l-4-4L4 16z M13 7l4 4",
  regenerate: "M19 8a8 8 0 1 0 1 6 M19 3v5h-5",
  up: "M7 11v9H4v-9z M7 11l4-7c2 0 3 1 2.5 3L13 10h6a2 2 0 0 1 2 2.4l-1.6 6A2 2 0 0 1 17.5 20H7",
  down: "M7 13V4H4v9z M7 13l4 7c2 0 3-1 2.5-3L13 14h6a2 2 0 0 0 2-2.4l-1.6-6A2 2 0 0 0 17.5 4H7",
  stop: "M7 7h10v10H7z",
  info: "M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18 M12 11v6 M12 7v.5",
  trash: "M4 7h16 M9 7V4h6v3 M6 7l1 13h10l1-13",
  forward: "M5 12h13 M13 6l6 6-6 6",
  clip: "M20 11l-8.5 8.5a5 5 0 0 1-7-7L13 4a3.5 3.5 0 0 1 5 5l-8.5 8.5a2 2 0 0 1-3-3L14 7",
  folder: "M3 6h6l2 2h10v11H3z",
  down_arrow: "M12 5v14 M6 13l6 6 6-6",
  more: "M12 5v14 M5 12h14",
};

export function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "16");
  svg.setAttribute("height", "16");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.classList.add("ico");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", PATHS[name]);
  svg.append(path);
  return svg;
}
