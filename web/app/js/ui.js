import { qrURL } from "./api.js";

// ui.js: small DOM helpers shared by the views. Text from the network only
// ever enters the page as text nodes (h() turns strings into text nodes,
// props.text sets textContent); nothing here parses HTML.

/** h builds an element. props: class, text, on{event: fn}, dataset{},
 * style{} (set from JS, allowed by the CSP), hidden, and any other key as an
 * attribute (false/null/undefined skip it, true sets it empty). Children are
 * nodes or strings (as text nodes); arrays are flattened, null skipped. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k === "style") Object.assign(el.style, v);
      else if (k === "value" || k === "checked" || k === "selected" || k === "disabled" || k === "hidden") el[k] = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

/** srOnly is text for screen readers only. */
export const srOnly = (text) => h("span", { class: "sr-only", text });

// Icon paths (24×24, stroked), our own drawing in the style of Feather.
const ICONS = {
  chat: "M21 11.5a8.4 8.4 0 0 1-9 8.4 8.8 8.8 0 0 1-3.9-.9L3 21l1.9-5.1A8.4 8.4 0 0 1 3 11.5 8.5 8.5 0 0 1 12 3a8.5 8.5 0 0 1 9 8.5z",
  inbox: "M22 12h-6l-2 3h-4l-2-3H2 M5.5 5.1L2 12v6a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2v-6l-3.5-6.9A2 2 0 0 0 16.8 4H7.2a2 2 0 0 0-1.7 1.1z",
  users: "M17 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2 M9 3a4 4 0 1 0 0 8 4 4 0 0 0 0-8z M23 21v-2a4 4 0 0 0-3-3.9 M16 3.1a4 4 0 0 1 0 7.8",
  userPlus: "M16 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2 M8.5 3a4 4 0 1 0 0 8 4 4 0 0 0 0-8z M20 8v6 M23 11h-6",
  phone: "M22 16.9v3a2 2 0 0 1-2.2 2 19.8 19.8 0 0 1-8.6-3.1 19.5 19.5 0 0 1-6-6A19.8 19.8 0 0 1 2.1 4.2 2 2 0 0 1 4.1 2h3a2 2 0 0 1 2 1.7c.1.9.4 1.9.7 2.8a2 2 0 0 1-.5 2.1L8.1 9.9a16 16 0 0 0 6 6l1.3-1.3a2 2 0 0 1 2.1-.4c.9.3 1.9.6 2.8.7a2 2 0 0 1 1.7 2z",
  arrowIn: "M17 7L7 17 M16 17H7V8",
  arrowOut: "M7 17L17 7 M8 7h9v9",
  video: "M23 7l-7 5 7 5V7z M3 5h11a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H3a2 2 0 0 1-2-2V7a2 2 0 0 1 2-2z",
  videoOff: "M16 16v1a2 2 0 0 1-2 2H3a2 2 0 0 1-2-2V7a2 2 0 0 1 2-2h2 M10.7 5H14a2 2 0 0 1 2 2v3.3l1 1L23 7v10 M1 1l22 22",
  mic: "M12 1a3 3 0 0 0-3 3v8a3 3 0 0 0 6 0V4a3 3 0 0 0-3-3z M19 10v2a7 7 0 0 1-14 0v-2 M12 19v4 M8 23h8",
  micOff: "M1 1l22 22 M9 9v3a3 3 0 0 0 5.1 2.1 M15 9.3V4a3 3 0 0 0-5.9-.6 M17 17a7 7 0 0 1-12-5v-2 M19 10v2c0 .4 0 .8-.1 1.2 M12 19v4 M8 23h8",
  settings: "M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6z M19.4 15a1.7 1.7 0 0 0 .3 1.8l.1.1a2 2 0 1 1-2.8 2.8l-.1-.1a1.7 1.7 0 0 0-1.8-.3 1.7 1.7 0 0 0-1 1.5V21a2 2 0 1 1-4 0v-.1a1.7 1.7 0 0 0-1.1-1.5 1.7 1.7 0 0 0-1.8.3l-.1.1a2 2 0 1 1-2.8-2.8l.1-.1a1.7 1.7 0 0 0 .3-1.8 1.7 1.7 0 0 0-1.5-1H3a2 2 0 1 1 0-4h.1a1.7 1.7 0 0 0 1.5-1.1 1.7 1.7 0 0 0-.3-1.8l-.1-.1a2 2 0 1 1 2.8-2.8l.1.1a1.7 1.7 0 0 0 1.8.3H9a1.7 1.7 0 0 0 1-1.5V3a2 2 0 1 1 4 0v.1a1.7 1.7 0 0 0 1 1.5 1.7 1.7 0 0 0 1.8-.3l.1-.1a2 2 0 1 1 2.8 2.8l-.1.1a1.7 1.7 0 0 0-.3 1.8V9a1.7 1.7 0 0 0 1.5 1H21a2 2 0 1 1 0 4h-.1a1.7 1.7 0 0 0-1.5 1z",
  back: "M19 12H5 M12 19l-7-7 7-7",
  send: "M22 2L11 13 M22 2l-7 20-4-9-9-4 20-7z",
  search: "M11 3a8 8 0 1 0 0 16 8 8 0 0 0 0-16z M21 21l-4.3-4.3",
  shield: "M12 22s8-4 8-10V5l-8-3-8 3v7c0 6 8 10 8 10z M9 12l2 2 4-4",
  alert: "M10.3 3.9L1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z M12 9v4 M12 17h0",
  x: "M18 6L6 18 M6 6l12 12",
  check: "M20 6L9 17l-5-5",
  copy: "M9 9h11a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2h-9a2 2 0 0 1-2-2V11a2 2 0 0 1 2-2z M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1",
  lock: "M5 11h14a2 2 0 0 1 2 2v7a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2z M7 11V7a5 5 0 0 1 10 0v4",
  compose: "M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z M12 7v6 M9 10h6",
  bell: "M18 8A6 6 0 0 0 6 8c0 7-3 9-3 9h18s-3-2-3-9 M13.7 21a2 2 0 0 1-3.4 0",
  info: "M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20z M12 16v-4 M12 8h0",
  down: "M6 9l6 6 6-6",
  server: "M4 2h16a2 2 0 0 1 2 2v4a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2z M4 14h16a2 2 0 0 1 2 2v4a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2v-4a2 2 0 0 1 2-2z M6 6h0 M6 18h0",
  tick: "M4 12.5l5 5L20 6.5",
  ticks: "M1 12.5l5 5L17 6.5 M11.5 16.5l1 1L23 6.5",
  clock: "M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20z M12 6v6l4 2",
  at: "M12 16a4 4 0 1 0 0-8 4 4 0 0 0 0 8z M16 8v5a3 3 0 0 0 6 0v-1a10 10 0 1 0-3.9 7.9",
  devices: "M3 4h10a1 1 0 0 1 1 1v8a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1z M1 18h14 M18 8h3a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1h-3a1 1 0 0 1-1-1V9a1 1 0 0 1 1-1z M19.5 17h0",
  clip: "M21.4 11.1l-9.2 9.2a6 6 0 0 1-8.5-8.5l9.2-9.2a4 4 0 0 1 5.7 5.7l-9.2 9.2a2 2 0 0 1-2.8-2.8l8.5-8.5",
  file: "M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z M14 2v6h6 M8 13h8 M8 17h5",
  image: "M5 3h14a2 2 0 0 1 2 2v14a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z M8.5 10a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3z M21 15l-5-5L5 21",
  download: "M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4 M7 10l5 5 5-5 M12 15V3",
  retry: "M23 4v6h-6 M20.5 15a9 9 0 1 1-2.1-9.4L23 10",
  trash: "M3 6h18 M19 6l-1 14a2 2 0 0 1-2 2H8a2 2 0 0 1-2-2L5 6 M10 11v6 M14 11v6 M9 6V4a1 1 0 0 1 1-1h4a1 1 0 0 1 1 1v2",
  monitor: "M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z M8 21h8 M12 17v4",
  reply: "M9 15l-6-6 6-6 M3 9h11a7 7 0 0 1 7 7v4",
  pencil: "M17 3a2.8 2.8 0 1 1 4 4L7.5 20.5 2 22l1.5-5.5z M15 5l4 4",
  ban: "M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20z M4.9 4.9l14.2 14.2",
  more: "M12 5.5h0 M12 12h0 M12 18.5h0",
  timer: "M12 22a8 8 0 1 0 0-16 8 8 0 0 0 0 16z M12 10v4l2.5 2 M9.5 2h5 M12 2v4 M19 6l1.5-1.5",
  groupAdd: "M17 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2 M9 3a4 4 0 1 0 0 8 4 4 0 0 0 0-8z M20 8v6 M23 11h-6",
  leave: "M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4 M16 17l5-5-5-5 M21 12H9",
  userMinus: "M16 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2 M8.5 3a4 4 0 1 0 0 8 4 4 0 0 0 0-8z M23 11h-6",
  star: "M12 2l3.1 6.3 6.9 1-5 4.9 1.2 6.8-6.2-3.2-6.2 3.2L7 14.2 2 9.3l6.9-1z",
};
const SVG = "http://www.w3.org/2000/svg";

/** icon returns a decorative (aria-hidden) SVG icon. */
export function icon(name, cls = "") {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", "icon " + cls);
  for (const d of ICONS[name].split(" M")) {
    const p = document.createElementNS(SVG, "path");
    p.setAttribute("d", d.startsWith("M") ? d : "M" + d);
    svg.append(p);
  }
  return svg;
}

/** iconButton is a <button> with an icon and an accessible name; the name
 * is visible as a tooltip (title) too. */
export function iconButton(name, label, onClick, cls = "") {
  return h("button", { type: "button", class: "icon-btn " + cls, "aria-label": label, title: label, on: { click: onClick } }, icon(name));
}

const PALETTE = ["#e17076", "#7bc862", "#e5a64e", "#65aadd", "#a695e7", "#ee7aae", "#6ec9cb", "#faa774"];

function hash(s) {
  let x = 2166136261;
  for (let i = 0; i < s.length; i++) x = Math.imul(x ^ s.charCodeAt(i), 16777619);
  return x >>> 0;
}

/** initials of a display name: "alice" → "A", "Bob Smith" → "BS",
 * "Carol (work)" → "CW"; only letters and digits count. */
export function initials(name) {
  const clean = (name || "").replace(/^@/, "").replace(/~.*$/, "");
  const words = clean.split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  const out = words.slice(0, 2).map((w) => Array.from(w)[0]).join("").toUpperCase();
  return out || "?";
}

/** avatar is a round badge with the initials of name, its colour from key. */
export function avatar(name, key, size = "") {
  const el = h("span", { class: "avatar " + size, "aria-hidden": "true", text: initials(name) });
  el.style.backgroundColor = PALETTE[hash(key || name || "") % PALETTE.length];
  return el;
}

/** groupAvatar is a group's round badge: the people icon on a colour
 * from its id. */
export function groupAvatar(id, size = "") {
  const el = h("span", { class: "avatar group " + size, "aria-hidden": "true" }, icon("users"));
  el.style.backgroundColor = PALETTE[hash(id || "") % PALETTE.length];
  return el;
}

// Darker tones of PALETTE, readable as text on a white bubble.
const NAME_COLOURS = ["#c23a4b", "#2f8a3a", "#b26a12", "#1f6fae", "#6f55c9", "#c03d7f", "#138085", "#c0541c"];

/** nameColour is the colour of a sender's name in a group conversation:
 * by their place among its members when given (no two of the first
 * eight alike), else from key. */
export const nameColour = (key, place = -1) => NAME_COLOURS[(place >= 0 ? place : hash(key || "")) % NAME_COLOURS.length];

/** shortAccount shortens an account id for display: csa1abcd…wxyz. */
export function shortAccount(a) {
  if (!a) return "";
  return a.length > 16 ? a.slice(0, 9) + "…" + a.slice(-4) : a;
}

const two = (n) => String(n).padStart(2, "0");

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** clock: HH:MM in 24 hours. */
export function clock(d) { return two(d.getHours()) + ":" + two(d.getMinutes()); }

/** listTime is a list row's time: today HH:MM, yesterday, a weekday this
 * week, else a short date. */
export function listTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d) || d.getFullYear() < 2000) return "";
  const now = new Date();
  if (sameDay(d, now)) return clock(d);
  const y = new Date(now); y.setDate(now.getDate() - 1);
  if (sameDay(d, y)) return "Yesterday";
  if (now - d < 6 * 864e5) return d.toLocaleDateString(undefined, { weekday: "short" });
  return d.toLocaleDateString(undefined, { day: "numeric", month: "short", year: d.getFullYear() === now.getFullYear() ? undefined : "numeric" });
}

/** dayLabel names a day for the separators of a chat. */
export function dayLabel(d) {
  const now = new Date();
  if (sameDay(d, now)) return "Today";
  const y = new Date(now); y.setDate(now.getDate() - 1);
  if (sameDay(d, y)) return "Yesterday";
  return d.toLocaleDateString(undefined, { weekday: "long", day: "numeric", month: "long", year: d.getFullYear() === now.getFullYear() ? undefined : "numeric" });
}

/** duration: m:ss, or h:mm:ss from an hour. */
export function duration(s) {
  s = Math.max(0, Math.floor(s || 0));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${two(mm)}:${two(ss)}`;
}

/** size says a number of bytes the way people read them: 980 B, 14 KB,
 * 3.2 MB (powers of 1024). */
export function size(n) {
  n = Math.max(0, n || 0);
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
  return `${n < 10 ? n.toFixed(1).replace(/\.0$/, "") : Math.round(n)} ${units[i]}`;
}

/** fileKind sorts an attachment by how the app shows it: image, voice
 * (a recorded voice note: audio with its duration), audio, video or file. */
export function fileKind(f) {
  const t = (f && f.type) || "";
  if (t.startsWith("image/") && t !== "image/svg+xml") return "image"; // an SVG is a download: it may hold script
  if (t.startsWith("audio/")) return f.duration_ms ? "voice" : "audio";
  if (t.startsWith("video/")) return "video";
  return "file";
}

const KIND = { image: ["image", "Photo"], voice: ["mic", "Voice note"], audio: ["mic", "Audio"], video: ["video", "Video"], file: ["file", "File"] };

/** preview is a message as a chat list shows it in one line: its text, or
 * for an attachment an icon and its caption, else what it is; a deleted
 * message says so, and a change of the disappearing-message timer who
 * made it (name is the peer's). */
export function preview(m, name = "") {
  const text = previewText(m, name);
  if (isTimerChange(m)) return [icon("timer", "preview-icon"), h("span", { class: "preview-text", text })];
  if (m.deleted) return [icon("ban", "preview-icon"), h("span", { class: "preview-text deleted", text })];
  return m.file ? [icon(KIND[fileKind(m.file)][0], "preview-icon"), h("span", { class: "preview-text", text })] : [h("span", { class: "preview-text", text })];
}

/** previewText is preview's text alone, for a notification; name is
 * the peer's, for a change of the disappearing-message timer. */
export function previewText(m, name = "") {
  if (isTimerChange(m)) return timerChangeText(m, name);
  if (m.deleted) return m.direction === "out" ? "You deleted this message" : "This message was deleted";
  if (!m.file || m.text) return m.text;
  const k = fileKind(m.file);
  const word = KIND[k][1];
  return k === "voice" ? `${word} (${duration(m.file.duration_ms / 1000)})` : k === "file" || k === "audio" ? m.file.name : word;
}

/** isTimerChange reports whether m is the message that set a
 * conversation's disappearing-message timer (timer_set, possibly 0). */
export const isTimerChange = (m) => !!m && typeof m.timer_set === "number";

const UNITS = [[31536000, "year"], [604800, "week"], [86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];

/** timerWords says a disappearing-message timer in words: "30 seconds",
 * "5 minutes", "1 day", "1 week". */
export function timerWords(s) {
  for (const [n, unit] of UNITS) {
    if (s >= n && s % n === 0) return `${s / n} ${unit}${s === n ? "" : "s"}`;
  }
  return `${s} seconds`;
}

/** timerChangeText is the line a conversation shows for a timer change
 * m: "You set disappearing messages to 1 day", "Alice turned off
 * disappearing messages"; name is the peer's. */
export function timerChangeText(m, name = "") {
  const who = m.direction === "out" ? "You" : name || "They";
  return m.timer_set > 0 ? `${who} set disappearing messages to ${timerWords(m.timer_set)}` : `${who} turned off disappearing messages`;
}

/** ago: "3 min", "2 h" for durations shown in words. */
export function since(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

// Live regions: #alerts (assertive) for errors and incoming calls, #status
// (polite) for confirmations. Each toast is also shown on screen.
let toastTimer = 0;

/** toast shows a short message (and hint) on screen and to screen readers. */
export function toast(message, hint = "", kind = "info") {
  const box = document.getElementById(kind === "error" ? "alerts" : "status");
  const el = h("div", { class: "toast " + kind }, h("strong", { text: message }), hint ? h("span", { text: hint }) : null,
    h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", on: { click: () => el.remove() } }, icon("x")));
  box.replaceChildren(el);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.remove(), kind === "error" ? 9000 : 4000);
}

/** showError shows an ApiError (or any error) as the node worded it. */
export function showError(err, what = "") {
  if (err && err.name === "AbortError") return;
  const msg = (err && err.message) || String(err);
  toast(what ? `${what}: ${msg}` : msg, (err && err.hint) || "", "error");
}

/** errorBox is an inline error with its hint, for forms. */
export function errorBox(err) {
  return h("div", { class: "form-error", role: "alert" }, h("strong", { text: err.message || String(err) }), err.hint ? h("span", { text: err.hint }) : null);
}

let openDialogs = 0;

/** dialog opens a modal dialog (role=dialog, aria-modal) that keeps focus
 * inside, closes on Escape and gives focus back to where it was. build gets
 * close() and returns the body; returns {el, close}. */
export function dialog({ title, label, build, onClose, cls = "", dismissable = true }) {
  const prev = document.activeElement;
  const titleId = "dlg-" + Math.random().toString(36).slice(2);
  const panel = h("div", { class: "dialog " + cls, role: "dialog", "aria-modal": "true", "aria-labelledby": title ? titleId : null, "aria-label": title ? null : label, tabindex: "-1" });
  const backdrop = h("div", { class: "backdrop" }, panel);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    backdrop.remove();
    openDialogs--;
    document.removeEventListener("keydown", onKey, true);
    if (onClose) onClose();
    if (prev && prev.isConnected && typeof prev.focus === "function") prev.focus();
  };
  const onKey = (e) => {
    if (!panel.isConnected) return;
    // Escape closes the dialog and nothing else (not the conversation under it).
    if (e.key === "Escape" && dismissable) { e.preventDefault(); e.stopPropagation(); close(); return; }
    if (e.key === "Tab") {
      const f = focusables(panel);
      if (!f.length) return;
      const first = f[0], last = f[f.length - 1];
      if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
    }
  };
  if (title) panel.append(h("h2", { id: titleId, class: "dialog-title", text: title }));
  panel.append(build(close));
  if (dismissable) backdrop.addEventListener("mousedown", (e) => { if (e.target === backdrop) close(); });
  document.addEventListener("keydown", onKey, true);
  document.body.append(backdrop);
  openDialogs++;
  const auto = panel.querySelector("[autofocus]") || focusables(panel)[0] || panel;
  auto.focus();
  return { el: panel, close };
}

export const dialogOpen = () => openDialogs > 0;

function focusables(root) {
  return [...root.querySelectorAll("button, [href], input, select, textarea, [tabindex]:not([tabindex='-1'])")]
    .filter((e) => !e.disabled && e.offsetParent !== null);
}

/** confirm asks a yes/no question in a dialog; resolves true on yes. */
export function confirm(title, text, yes = "OK", danger = false) {
  return new Promise((resolve) => {
    let answer = false;
    dialog({
      title,
      onClose: () => resolve(answer),
      build: (close) => h("div", null,
        h("p", { class: "dialog-text", text }),
        h("div", { class: "dialog-actions" },
          h("button", { type: "button", class: "btn", text: "Cancel", on: { click: close } }),
          h("button", { type: "button", class: "btn " + (danger ? "danger" : "primary"), text: yes, autofocus: true, on: { click: () => { answer = true; close(); } } }))),
    });
  });
}

/** qrImage is an <img> of a QR code of text, made by the node and fetched
 * with the token; alt describes it. */
export function qrImage(text, alt, cls = "qr") {
  const img = h("img", { class: cls, alt, width: 180, height: 180 });
  qrURL(text).then((url) => { img.src = url; }).catch((err) => {
    img.alt = alt + " (could not be made: " + err.message + ")";
  });
  return img;
}

/** copyButton copies text to the clipboard and says so. It is an icon
 * button, or a small button showing the word visible ("Copy") when given;
 * label is its accessible name either way. */
export function copyButton(text, label, visible = "") {
  return h("button", {
    type: "button", class: visible ? "btn small" : "icon-btn small", "aria-label": label, title: label,
    on: {
      click: async () => {
        try { await navigator.clipboard.writeText(text); toast("Copied to the clipboard"); }
        catch { toast("Could not copy", "select the text and copy it yourself", "error"); }
      },
    },
  }, icon("copy"), visible || null);
}

/** field is a labelled input: {label, id, ...input props}, with an optional
 * hint under it (described-by). */
export function field(label, props = {}, hint = "") {
  const id = props.id || "f-" + Math.random().toString(36).slice(2);
  const hintId = hint ? id + "-hint" : null;
  const input = h(props.tag || "input", { ...props, tag: null, id, "aria-describedby": hintId });
  return {
    input,
    el: h("div", { class: "field" }, h("label", { for: id, text: label }), input, hint ? h("p", { class: "hint", id: hintId, text: hint }) : null),
  };
}

/** empty is the placeholder of a pane with nothing to show. */
export function empty(iconName, title, text, ...actions) {
  return h("div", { class: "empty" }, icon(iconName, "empty-icon"), h("h2", { text: title }), text ? h("p", { text }) : null, actions.length ? h("div", { class: "empty-actions" }, actions) : null);
}

/** debounce runs fn once, ms after the last call. */
export function debounce(fn, ms) {
  let t = 0;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

const STATES = {
  queued: ["clock", "Queued"],
  sent: ["tick", "Sent"],
  delivered: ["ticks", "Delivered"],
  read: ["ticks", "Read"],
  failed: ["alert", "Not delivered"],
};

/** stateMark shows an outgoing message's state as an icon (clock, tick,
 * two ticks, two blue ticks, warning) with the state in words for screen
 * readers and as a tooltip. */
export function stateMark(state) {
  const [ic, words] = STATES[state] || STATES.queued;
  return h("span", { class: "msg-state", dataset: { state }, title: words }, icon(ic), srOnly(words));
}

/** missed: an incoming call nobody here answered (it rang out, or the
 * caller gave up first). */
export const missed = (c) => c.direction === "in" && (c.end_reason === "missed" || c.end_reason === "cancelled");

const WORDS = {
  hangup: "Call ended",
  "remote-hangup": "They hung up",
  declined: "Declined",
  busy: "They're on another call",
  missed: "No answer",
  cancelled: "Cancelled",
  unavailable: "can't take calls from you right now",
  failed: "The call failed",
  "ice-failed": "No network path between you worked",
  timeout: "The connection timed out",
  "answered-elsewhere": "Answered on another of your devices",
};

/** reasonText says in words why call c ended, from this side's view. */
export function reasonText(c) {
  const r = c.end_reason;
  const name = c.peer_name || "They";
  if (c.direction === "in") {
    if (missed(c)) return "Missed call";
    if (r === "declined") return "You declined";
    if (r === "unavailable") return "Refused by your call settings";
    if (r === "hangup") return "You hung up";
  } else {
    if (r === "unavailable") return `${name} ${WORDS.unavailable}`;
    if (r === "declined") return `${name} declined`;
    if (r === "missed") return `${name} didn't answer`;
    if (r === "hangup") return "You hung up";
    if (r === "cancelled") return "You cancelled";
  }
  return WORDS[r] || r || "Call ended";
}
