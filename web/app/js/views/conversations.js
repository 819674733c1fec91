// views/conversations.js: the list of chats, most recent first, with each
// one's last message, its time and its unread count; live from the store.
// Groups are chats too: their avatar is the group's, the preview names
// who wrote the last message ("Bob: hi"), and an invitation to one shows
// at the top, marked as such, until it is answered (views/groups.js); an
// invitation from someone who isn't a contact waits in the requests
// instead (views/requests.js), as their first message would.
// While a contact types to you (typing indicators on), their row says
// "typing…" in place of the last message.

import * as store from "../store.js";
import * as notify from "../notify.js";
import { go, path } from "../nav.js";
import { h, icon, iconButton, avatar, groupAvatar, listTime, stateMark, srOnly, dialog, field, preview as previewOf, isTimerChange } from "../ui.js";

const newGroup = () => import("./groups.js").then((m) => m.newGroup());

export function list(el) {
  let selected = null;
  let filter = "";
  const search = h("input", { type: "search", id: "chat-search", placeholder: "Search chats", autocomplete: "off",
    on: { input: () => { filter = search.value.trim().toLowerCase(); render(); } } });
  const ul = h("ul", { role: "list", class: "rows", "aria-label": "Conversations" });
  const reqLink = h("a", { class: "requests-link", href: "/requests", hidden: true });
  // Offer notifications once, from a click, as the browser wants.
  const notif = notify.permission() === "default" && !localStorage.getItem("callsign.notify.asked")
    ? h("div", { class: "notify-offer" }, icon("bell"),
      h("div", null, h("strong", { text: "Get notified of new messages" }), h("p", { text: "While this tab is in the background." })),
      h("button", { type: "button", class: "btn small primary", text: "Turn on", on: { click: async () => { await notify.ask(); localStorage.setItem("callsign.notify.asked", "1"); notif.remove(); } } }),
      h("button", { type: "button", class: "icon-btn small", "aria-label": "Not now", title: "Not now", on: { click: () => { localStorage.setItem("callsign.notify.asked", "1"); notif.remove(); } } }, icon("x")))
    : null;
  const body = h("div", { class: "pane-body" });
  el.append(
    h("header", { class: "pane-header" }, h("h1", { text: "Chats" }),
      h("div", { class: "pane-actions" }, iconButton("groupAdd", "New group", newGroup), iconButton("compose", "New chat", () => newChat()))),
    h("div", { class: "search" }, icon("search"), h("label", { for: "chat-search", class: "sr-only", text: "Search chats" }), search),
    body);
  body.append(...[notif, reqLink, ul].filter(Boolean));

  const rows = new Map();

  function render() {
    const reqs = store.visibleRequests().length;
    reqLink.hidden = reqs === 0;
    reqLink.replaceChildren(icon("inbox"), h("span", { text: reqs === 1 ? "1 message request" : `${reqs} message requests` }));
    const all = store.state.conversations.filter(store.listed);
    // Invitations wait at the top for an answer.
    const ordered = [...all.filter(store.invited), ...all.filter((c) => !store.invited(c))];
    const convs = ordered.filter((c) => {
      if (!filter) return true;
      return nameOf(c).toLowerCase().includes(filter) || (c.last && (c.last.text.toLowerCase().includes(filter) || (c.last.file && c.last.file.name.toLowerCase().includes(filter))));
    });
    // Rows are rebuilt only when what they show changed, and kept in the
    // list otherwise, so a click or the focus on a row is never lost.
    const keep = new Set();
    const items = convs.map((c) => {
      keep.add(c.peer);
      const contact = store.contactOf(c.peer);
      const g = c.group;
      const sig = JSON.stringify([nameOf(c), !g && store.isTyping(c.peer), c.last_at, c.unread, c.last && [c.last.id, c.last.state, c.last.text, !!c.last.deleted, c.last.timer_set, c.last.from_name], c.peer === selected, contact && contact.key_changed, listTime(c.last_at),
        g && [g.status, g.invited_by_name, g.request, (g.members || []).length, c.last && store.senderName(c.peer, c.last.from, c.last.from_name)]]);
      let x = rows.get(c.peer);
      if (!x || x.sig !== sig) {
        const a = row(c);
        if (x) {
          const hadFocus = x.li.contains(document.activeElement);
          x.li.replaceChildren(a);
          if (hadFocus) a.focus();
        } else {
          x = { li: h("li", null, a) };
          rows.set(c.peer, x);
        }
        x.sig = sig;
      }
      return x.li;
    });
    for (const k of [...rows.keys()]) if (!keep.has(k)) rows.delete(k);
    if (items.length !== ul.children.length || items.some((li, i) => ul.children[i] !== li)) {
      const focused = document.activeElement;
      ul.replaceChildren(...items);
      if (focused && ul.contains(focused)) focused.focus();
    }
    body.querySelector(".empty-list")?.remove();
    if (!all.length) {
      body.append(h("div", { class: "empty-list" },
        h("p", { text: "No conversations yet." }),
        h("p", { class: "muted", text: "Add someone by their handle to write to them." }),
        h("a", { class: "btn primary", href: "/contacts/add", text: "Add a contact" })));
    } else if (!convs.length) {
      body.append(h("p", { class: "empty-list muted", text: "No chat matches your search." }));
    }
  }

  function row(c) {
    if (c.group) return groupRow(c);
    const name = nameOf(c);
    const last = c.last;
    const contact = store.contactOf(c.peer);
    const preview = h("span", { class: "row-preview" });
    if (store.isTyping(c.peer)) {
      preview.append(h("span", { class: "preview-text typing", text: "typing…" }));
    } else if (last) {
      // A deleted message, or a change of the disappearing-message timer,
      // says whose it was by itself: "You deleted this message".
      if (last.direction === "out" && !last.deleted && !isTimerChange(last)) preview.append(stateMark(last.state), h("span", { class: "you", text: "You: " }));
      preview.append(...previewOf(last, name));
    }
    return h("a", { class: "row-link", href: path("chats", c.peer), dataset: { peer: c.peer }, "aria-current": c.peer === selected ? "page" : null },
      avatar(name, c.peer),
      h("span", { class: "row-main" },
        h("span", { class: "row-top" },
          h("span", { class: "row-name" }, h("span", { text: name }),
            contact && contact.key_changed ? h("span", { class: "warn-dot", title: "Key changed" }, icon("alert"), srOnly(" (key changed)")) : null),
          h("time", { class: "row-time" + (c.unread ? " unread" : ""), datetime: c.last_at, text: listTime(c.last_at) })),
        h("span", { class: "row-bottom" }, preview,
          c.unread ? h("span", { class: "badge" }, String(c.unread), srOnly(c.unread === 1 ? " unread message" : " unread messages")) : null)));
  }

  // groupRow is a group's row: an invitation says who sent it; otherwise
  // the last message with its sender's name, or a line on where you stand.
  function groupRow(c) {
    const g = c.group;
    const name = nameOf(c);
    const last = c.last;
    const preview = h("span", { class: "row-preview" });
    let tag = null;
    if (g.status === "invited") {
      tag = h("span", { class: "tag invite", text: "Invitation" });
      preview.append(h("span", { class: "preview-text", text: g.invited_by_name ? `${g.invited_by_name} invited you` : "You're invited to join" }));
    } else if (last) {
      if (last.direction === "out" && !last.deleted) preview.append(stateMark(last.state), h("span", { class: "you", text: "You: " }));
      else if (last.direction === "in" && !last.deleted) preview.append(h("span", { class: "you", text: store.senderName(c.peer, last.from, last.from_name) + ": " }));
      preview.append(...previewOf(last, name));
    } else if (g.status === "removed") {
      preview.append(h("span", { class: "preview-text", text: "You were removed" }));
    } else {
      preview.append(h("span", { class: "preview-text", text: g.status === "left" ? "You left" : `${(g.members || []).length} members` }));
    }
    const unread = g.status === "invited" ? 0 : c.unread;
    return h("a", { class: "row-link group-row" + (g.status === "invited" ? " invitation" : ""), href: path("chats", c.peer), dataset: { peer: c.peer }, "aria-current": c.peer === selected ? "page" : null },
      groupAvatar(c.peer),
      h("span", { class: "row-main" },
        h("span", { class: "row-top" },
          h("span", { class: "row-name" }, h("span", { text: name }), srOnly(g.status === "invited" ? " (group invitation)" : " (group)")),
          tag || h("time", { class: "row-time" + (unread ? " unread" : ""), datetime: c.last_at, text: listTime(c.last_at) })),
        h("span", { class: "row-bottom" }, preview,
          unread ? h("span", { class: "badge" }, String(unread), srOnly(unread === 1 ? " unread message" : " unread messages")) : null)));
  }

  const offs = ["conversations", "requests", "contacts", "typers"].map((t) => store.on(t, render));
  render();
  return {
    select(p) { selected = p; render(); },
    destroy() { offs.forEach((f) => f()); },
  };
}

/** nameOf is how the chat list names conversation c: a group by its name. */
const nameOf = (c) => (c.group ? c.group.name : store.nameOf(c.peer, c.peer_name));

/** newChat picks a contact to write to, or leads to adding one. */
export function newChat() {
  dialog({
    title: "New chat",
    cls: "picker",
    build: (close) => {
      const f = field("Search contacts", { type: "search", autocomplete: "off", autofocus: true });
      const ul = h("ul", { role: "list", class: "rows compact" });
      const render = () => {
        const q = f.input.value.trim().toLowerCase();
        const cs = store.state.contacts.filter((c) => !c.blocked && (!q || c.petname.toLowerCase().includes(q) || (c.handle || "").toLowerCase().includes(q)));
        ul.replaceChildren(...cs.map((c) => h("li", null, h("button", { type: "button", class: "row-link", on: { click: () => { close(); go(path("chats", c.account)); } } },
          avatar(c.petname, c.account), h("span", { class: "row-main" }, h("span", { class: "row-name", text: c.petname }), h("span", { class: "row-preview", text: c.handle ? "@" + c.handle : "" }))))));
        if (!cs.length) ul.append(h("li", { class: "muted pad", text: store.state.contacts.length ? "No contact matches." : "You have no contacts yet." }));
      };
      f.input.addEventListener("input", render);
      render();
      const group = h("button", { type: "button", class: "row-link new-group", on: { click: () => { close(); newGroup(); } } },
        h("span", { class: "avatar group-new", "aria-hidden": "true" }, icon("users")), h("span", { class: "row-main" }, h("span", { class: "row-name", text: "New group" })));
      return h("div", null, f.el, group, ul, h("div", { class: "dialog-actions" },
        h("button", { type: "button", class: "btn", text: "Cancel", on: { click: close } }),
        h("button", { type: "button", class: "btn primary", text: "Add a contact by handle", on: { click: () => { close(); go("/contacts/add"); } } })));
    },
  });
}
