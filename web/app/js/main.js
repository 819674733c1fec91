// main.js: boot. Signs in with the one-time ticket in the address
// (#ticket=...; a token, #token=..., is still taken), shows the sign-in
// screen without either, then builds the shell (section rail, list pane,
// main pane), routes between the views and wires the keyboard shortcuts.
// The views live in views/, one module each.

import * as api from "./api.js";
import * as store from "./store.js";
import * as notify from "./notify.js";
import { go, onRoute, where, path, SECTIONS } from "./nav.js";
import { h, icon, avatar, empty, dialog, toast, errorBox, dialogOpen, missed } from "./ui.js";
import * as conversations from "./views/conversations.js";

// The chat list loads with the app; a conversation (views/chat.js) loads
// when one is open, and is fetched once the first screen is drawn; the
// other views load when first opened. The node serves this module joined
// with all of them (api/webjoin.go: on a cold load each request costs
// more than its bytes), so these imports resolve at once there; as plain
// modules (the node's fallback) they are requests. Every import names its
// file in full, never a computed path, or the node can't join them.
const chat = () => import("./views/chat.js");
const groups = () => import("./views/groups.js");

const VIEWS = {
  chats: { label: "Chats", icon: "chat", load: async (param) => ({ list: conversations.list, detail: !param ? null : store.isGroup(param) ? (await groups()).detail : (await chat()).detail }),
    empty: () => empty("chat", "Your conversations", "Pick a conversation, or start a new one. Messages are end-to-end encrypted and go straight to the other person's node.",
      h("a", { class: "btn primary", href: "/contacts/add", text: "Add a contact" })) },
  requests: { label: "Requests", icon: "inbox", load: () => import("./views/requests.js"),
    empty: () => empty("inbox", "Message requests", "People you haven't added yet land here first. Open one to read it, then accept or block. They can't tell you've read it.") },
  contacts: { label: "Contacts", icon: "users", load: () => import("./views/contacts.js"),
    empty: () => empty("users", "Contacts", "Pick a contact to see their safety number, or add someone by their handle.",
      h("a", { class: "btn primary", href: "/contacts/add", text: "Add a contact" })) },
  calls: { label: "Calls", icon: "phone", load: () => import("./views/calllog.js"),
    empty: () => empty("phone", "Calls", "Voice and video calls go straight between the two nodes when the network allows, through a relay when it doesn't.") },
  settings: { label: "Settings", icon: "settings", load: () => import("./views/settings.js"), defaultParam: "profile" },
};

const app = document.getElementById("app");

function signIn(error) {
  store.disconnect();
  const token = h("input", { id: "token-input", name: "token", autocomplete: "off", spellcheck: "false", required: true, class: "mono" });
  const form = h("form", {
    class: "signin-form", on: {
      submit: (e) => {
        e.preventDefault();
        const v = token.value.trim();
        const t = v.match(/#ticket=([0-9a-fA-F]+)/);
        if (t) { api.redeemTicket(t[1]).then(start, signIn); return; }
        api.setToken(v.replace(/^.*#token=/, ""));
        start();
      },
    },
  },
  h("label", { for: "token-input", text: "API token" }), token,
  h("button", { class: "btn primary", type: "submit", text: "Open" }));
  app.replaceChildren(h("div", { class: "signin" },
    h("div", { class: "signin-card" },
      h("div", { class: "brand" }, icon("at", "brand-icon"), h("span", { text: "callsign" })),
      h("h1", { text: "Open your node's address" }),
      h("p", null, "This app talks to your own node. When you start it with ", h("code", { text: "callsign up" }),
        ", it prints an address like ", h("code", { text: "http://127.0.0.1:PORT/#ticket=…" }), ". Open that address in this browser. ",
        "It works once; ", h("code", { text: "callsign web" }), " prints a new one."),
      h("p", null, "Or paste the token from the file ", h("code", { text: "api.token" }), " in the node's data directory (usually ",
        h("code", { text: "~/.local/share/callsign" }), ")."),
      error ? errorBox(error) : null,
      form)));
  token.focus();
}

let listView = null, detailView = null, shown = { section: null, param: undefined };

function buildShell() {
  const rail = h("nav", { class: "rail", "aria-label": "Sections" },
    h("a", { class: "rail-me", href: "/settings/profile", "aria-label": "Your profile", title: "Your profile" }),
    h("ul", { role: "list", class: "rail-items" },
      SECTIONS.map((s) => h("li", null, h("a", { class: "rail-item", href: "/" + s, dataset: { section: s } },
        icon(VIEWS[s].icon), h("span", { class: "rail-label", text: VIEWS[s].label }), h("span", { class: "badge", "aria-hidden": "true", hidden: true }))))));
  const listPane = h("section", { class: "list-pane", id: "list-pane" });
  const main = h("main", { class: "main-pane", id: "main", tabindex: "-1" });
  const banner = h("div", { class: "conn-banner", id: "conn-banner", role: "status", hidden: true });
  const removed = h("div", { class: "revoked-banner", id: "revoked-banner", role: "alert", hidden: true });
  app.replaceChildren(removed, h("div", { class: "shell", id: "shell" }, rail, listPane, main), banner);
  const badges = () => {
    const counts = { chats: store.chatsUnread(), requests: store.visibleRequests().length,
      calls: missedCalls() };
    for (const s of SECTIONS) {
      const a = rail.querySelector(`[data-section="${s}"]`);
      const b = a.querySelector(".badge");
      const n = counts[s] || 0;
      b.hidden = n === 0;
      b.textContent = n > 99 ? "99+" : String(n);
      if (n) a.setAttribute("aria-description", s === "calls" ? `${n} missed` : `${n} new`);
      else a.removeAttribute("aria-description");
    }
  };
  for (const t of ["conversations", "requests", "contacts", "calls", "groups"]) store.on(t, badges);
  const me = () => {
    const id = store.state.me;
    const name = (store.globalHandles()[0] || {}).name || (id && id.handle) || "";
    rail.querySelector(".rail-me").replaceChildren(avatar(name, id && id.account));
  };
  store.on("me", me);
  store.on("handles", me);
  let bannerTimer = 0;
  store.on("connection", (up) => {
    clearTimeout(bannerTimer);
    if (up) { banner.hidden = true; return; }
    // A blip is not worth a banner; a lasting outage is.
    bannerTimer = setTimeout(() => {
      banner.replaceChildren(icon("alert"), h("span", { text: "Reconnecting to your node… Messages will appear when it's back." }));
      banner.hidden = false;
    }, 1500);
  });
  // Removed from the account by another device: said above every view,
  // for good (the composer says why it is off too, views/chat.js).
  const revoked = () => {
    if (!store.state.revoked || !removed.hidden) return;
    removed.replaceChildren(icon("alert"), h("p", null,
      h("strong", { text: "This device was removed from your account on another device." }),
      " It no longer sends or receives new messages. To use it again, link it anew."));
    removed.hidden = false;
    app.classList.add("revoked");
  };
  store.on("revoked", revoked);
  badges();
  me();
  revoked();
}

function missedCalls() {
  const seen = Number(localStorage.getItem("callsign.calls.seen") || 0);
  return store.state.calls.filter((c) => missed(c) && new Date(c.start).getTime() > seen).length;
}

let renderSeq = 0;

async function render({ section, param }) {
  const v = VIEWS[section];
  if (!param && v.defaultParam && window.matchMedia("(min-width: 761px)").matches) param = v.defaultParam;
  const shell = document.getElementById("shell");
  if (!shell) return;
  const seq = ++renderSeq;
  let mod;
  try {
    mod = await v.load(param);
  } catch (err) {
    toast("Could not load this part of the app", err.message, "error");
    return;
  }
  if (seq !== renderSeq) return; // navigated elsewhere meanwhile
  shell.dataset.section = section;
  shell.classList.toggle("has-detail", !!param);
  for (const a of document.querySelectorAll(".rail-item")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const listPane = document.getElementById("list-pane");
  const main = document.getElementById("main");
  if (shown.section !== section) {
    if (listView && listView.destroy) listView.destroy();
    listPane.setAttribute("aria-label", v.label);
    listPane.replaceChildren();
    listView = mod.list(listPane) || null;
    shown.param = undefined;
  }
  if (shown.section !== section || shown.param !== param) {
    if (detailView && detailView.destroy) detailView.destroy();
    detailView = null;
    main.replaceChildren();
    if (param) detailView = mod.detail(main, param) || null;
    else if (v.empty) main.append(v.empty());
    if (listView && listView.select) listView.select(param);
    // Move focus into the pane that just opened, for keyboard and screen
    // reader users, unless the person is typing somewhere.
    const typing = document.activeElement && /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
    if (param && !typing && shown.section !== null && !main.contains(document.activeElement)) {
      const target = main.querySelector("[data-autofocus]") || main;
      target.focus({ preventScroll: true });
    }
  }
  shown = { section, param };
}

function shortcuts(e) {
  if (dialogOpen()) return;
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName) || e.target.isContentEditable;
  if (e.altKey && !e.ctrlKey && !e.metaKey && /^[1-5]$/.test(e.key)) {
    e.preventDefault();
    go("/" + SECTIONS[Number(e.key) - 1]);
  } else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "k") {
    e.preventDefault();
    const s = document.querySelector("#list-pane input[type=search]");
    if (s) s.focus();
  } else if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
    e.preventDefault();
    const links = [...document.querySelectorAll("#list-pane .row-link")];
    if (!links.length) return;
    const cur = links.findIndex((a) => a.getAttribute("aria-current") === "page");
    const next = links[Math.max(0, Math.min(links.length - 1, cur + (e.key === "ArrowUp" ? -1 : 1)))];
    next.click();
  } else if (e.key === "?" && !typing) {
    e.preventDefault();
    help();
  } else if (e.key === "Escape" && !typing && where().param) {
    const { section } = where();
    go("/" + section);
    const cur = document.querySelector("#list-pane [aria-current=page]") || document.querySelector("#list-pane .row-link");
    if (cur) cur.focus();
  }
}

/** help lists the keyboard shortcuts. */
export function help() {
  const rows = [
    ["Alt+1 … Alt+5", "Chats, Requests, Contacts, Calls, Settings"],
    ["Ctrl+K", "Search the list"],
    ["Alt+↑ / Alt+↓", "Previous / next item in the list"],
    ["Enter", "Send the message"],
    ["Shift+Enter", "New line in a message"],
    ["↑ (empty message box)", "Edit your last message"],
    ["Escape", "Close the open conversation or dialog"],
    ["M / V (in a call)", "Mute / camera on or off"],
    ["?", "This list"],
  ];
  dialog({
    title: "Keyboard shortcuts",
    build: (close) => h("div", null,
      h("dl", { class: "shortcuts" }, rows.map(([k, d]) => [h("dt", null, h("kbd", { text: k })), h("dd", { text: d })])),
      h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "btn primary", text: "Close", on: { click: close } }))),
  });
}

async function start() {
  if (!api.hasToken()) { signIn(); return; }
  // Everything the first screen needs, in one answer.
  try {
    await store.loadAll();
  } catch (err) {
    if (err.status === 401) return; // the sign-in screen is up (callsign:unauthorized)
    app.replaceChildren(h("div", { class: "signin" }, h("div", { class: "signin-card" },
      h("h1", { text: "Can't reach your node" }), errorBox(err),
      h("button", { type: "button", class: "btn primary", text: "Try again", on: { click: start } }))));
    return;
  }
  buildShell();
  notify.init();
  store.connect();
  store.on("incoming-call", (c) => import("./views/call.js").then((m) => m.onIncoming(c)));
  store.on("key-change", (k) => toast(`${store.nameOf(k.contact, k.contact)}'s key has changed`, "compare safety numbers before you trust new messages", "error"));
  onRoute(render);
  const w = where();
  if (location.pathname === "/" || !SECTIONS.includes(location.pathname.split("/")[1])) history.replaceState(null, "", path(w.section, w.param));
  await render(w);
  // Ready: the lists are on screen (tests and the budget read this).
  window.callsign.readyAt = performance.now();
  window.callsign.early = store.state.early;
  document.documentElement.dataset.ready = "";
  setTimeout(() => chat().catch(() => {}), 0); // a failed fetch is tried again on open
  if (!store.globalHandles().length && !localStorage.getItem("callsign.firstrun.later." + store.state.me.account)) {
    import("./views/firstrun.js").then((m) => m.show());
  }
}

window.addEventListener("callsign:unauthorized", (e) => { api.setToken(null); signIn(e.detail); });
document.addEventListener("keydown", shortcuts);
window.callsign = window.callsign || { pc: null };
window.callsign.help = help;
const ticket = api.initToken();
if (ticket) {
  // A spent link opened again in a tab that is signed in already still
  // opens the app.
  api.redeemTicket(ticket).then(start, (err) => (api.hasToken() ? start() : signIn(err)));
} else {
  start();
}
