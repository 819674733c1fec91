// nav.js: the router. Paths are the app's places: /chats/{account|group id},
// /requests/{account|group id}, /contacts/{account|add}, /calls/{id},
// /settings/{section}. The node serves index.html for any of them, so a
// reload or a bookmark opens the same place.

const handlers = new Set();

export const SECTIONS = ["chats", "requests", "contacts", "calls", "settings"];

/** where parses the address bar: {section, param}. */
export function where() {
  const parts = location.pathname.split("/").filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  const section = SECTIONS.includes(parts[0]) ? parts[0] : "chats";
  return { section, param: SECTIONS.includes(parts[0]) ? parts[1] || null : null };
}

/** go navigates to path inside the app. */
export function go(path, { replace = false } = {}) {
  if (path === location.pathname) { replace = true; }
  history[replace ? "replaceState" : "pushState"](null, "", path);
  for (const fn of handlers) fn(where());
}

/** onRoute calls fn with where() on every navigation. */
export function onRoute(fn) {
  handlers.add(fn);
  return () => handlers.delete(fn);
}

/** path builds /section/param with the param encoded. */
export function path(section, param) {
  return param ? `/${section}/${encodeURIComponent(param)}` : `/${section}`;
}

window.addEventListener("popstate", () => { for (const fn of handlers) fn(where()); });

// In-app links navigate without a reload; modified clicks keep the
// browser's behaviour (new tab and so on).
document.addEventListener("click", (e) => {
  const a = e.target.closest && e.target.closest("a[href^='/']");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || a.target) return;
  e.preventDefault();
  go(a.getAttribute("href"));
});
