// views/requests.js: message requests, the first messages of people who
// are not your contacts. Open one to read it (the sender can't tell),
// then Accept (they become a contact and the chat a normal one) or Block.
// An invitation to a group from someone who is not your contact waits
// here too ("bob invited you to a group"); it opens on the invitation of
// views/groups.js: Join makes it a chat of the chat list, Decline drops it,
// Block declines it and blocks who sent it.

import * as api from "../api.js";
import * as store from "../store.js";
import { go, path } from "../nav.js";
import { h, icon, avatar, groupAvatar, listTime, srOnly, showError, confirm, shortAccount, toast, preview as previewOf } from "../ui.js";
import { thread } from "./chat.js";
import * as groups from "./groups.js";

export function list(el) {
  let selected = null;
  const ul = h("ul", { role: "list", class: "rows", "aria-label": "Message requests" });
  const body = h("div", { class: "pane-body" }, ul);
  el.append(h("header", { class: "pane-header" }, h("h1", { text: "Requests" })),
    h("p", { class: "pane-note", text: "First messages and group invitations from people who aren't your contacts. They won't know you've read them." }), body);

  function render() {
    const reqs = store.visibleRequests();
    ul.replaceChildren(...reqs.map((r) => {
      if (r.group) return h("li", null, groupRow(r));
      const name = r.peer_name || shortAccount(r.peer);
      return h("li", null, h("a", { class: "row-link", href: path("requests", r.peer), dataset: { peer: r.peer }, "aria-current": r.peer === selected ? "page" : null },
        avatar(name, r.peer),
        h("span", { class: "row-main" },
          h("span", { class: "row-top" }, h("span", { class: "row-name", text: name }), h("time", { class: "row-time", datetime: r.last_at, text: listTime(r.last_at) })),
          h("span", { class: "row-bottom" }, h("span", { class: "row-preview" }, r.last ? previewOf(r.last, name) : null),
            r.unread ? h("span", { class: "badge" }, String(r.unread), srOnly(" unread")) : null))));
    }));
    if (!reqs.length) ul.append(h("li", { class: "empty-list muted", text: "No message requests." }));
  }

  // groupRow is an invitation to a group: the group, and who sent it.
  function groupRow(r) {
    const g = store.groupOf(r.peer) || r.group;
    const by = g.invited_by_name || shortAccount(g.invited_by);
    return h("a", { class: "row-link group-row invitation", href: path("requests", r.peer), dataset: { peer: r.peer }, "aria-current": r.peer === selected ? "page" : null },
      groupAvatar(r.peer),
      h("span", { class: "row-main" },
        h("span", { class: "row-top" },
          h("span", { class: "row-name" }, h("span", { text: g.name }), srOnly(" (group invitation)")),
          h("time", { class: "row-time", datetime: r.last_at, text: listTime(r.last_at) })),
        h("span", { class: "row-bottom" }, h("span", { class: "row-preview" },
          h("span", { class: "preview-text", text: by ? `${by} invited you to a group` : "You're invited to a group" })))));
  }

  const offs = [store.on("requests", render), store.on("contacts", render), store.on("groups", render)];
  render();
  return { select(p) { selected = p; render(); }, destroy() { offs.forEach((f) => f()); } };
}

export function detail(el, peer) {
  if (store.isGroup(peer)) return groups.detail(el, peer, { request: true });
  const req = () => store.state.requests.find((r) => r.peer === peer);
  const name = () => (req() && req().peer_name) || shortAccount(peer);
  const t = thread(peer, { readOnly: true });
  const title = h("h1", { class: "chat-title" });
  const sub = h("span", { class: "chat-sub mono" });
  const accept = h("button", { type: "button", class: "btn primary", text: "Accept", on: { click: onAccept } });
  const block = h("button", { type: "button", class: "btn danger", text: "Block", on: { click: onBlock } });
  el.append(h("section", { class: "chat request", "aria-label": "Message request" },
    h("header", { class: "chat-header" },
      h("a", { class: "icon-btn back", href: "/requests", "aria-label": "Back to requests", title: "Back to requests" }, icon("back")),
      h("div", { class: "chat-peer" }, avatar(name(), peer), h("span", { class: "chat-peer-text" }, title, sub))),
    t.el,
    h("div", { class: "request-bar" },
      h("p", { class: "request-text" }),
      h("div", { class: "request-actions" }, block, accept))));
  const text = el.querySelector(".request-text");

  function render() {
    title.textContent = name();
    sub.textContent = peer;
    text.textContent = `${name()} isn't in your contacts. Accept to reply and let them see when you've read their messages; block to drop everything they send.`;
  }

  async function onAccept() {
    accept.disabled = block.disabled = true;
    try {
      const c = await api.post(`/requests/${api.seg(peer)}/accept`);
      await Promise.all([store.load("contacts"), store.load("requests"), store.load("conversations")]);
      go(path("chats", peer), { replace: true });
      toast(`${c.petname} is now a contact`);
    } catch (err) {
      accept.disabled = block.disabled = false;
      showError(err, "Could not accept");
    }
  }

  async function onBlock() {
    if (!(await confirm(`Block ${name()}?`, "Their messages and calls will be dropped without telling them. You can unblock them in Contacts.", "Block", true))) return;
    try {
      await api.post(`/contacts/${api.seg(peer)}/block`);
      toast(`${name()} is blocked`);
      await Promise.all([store.load("contacts"), store.load("requests")]);
      go("/requests", { replace: true });
    } catch (err) { showError(err, "Could not block"); }
  }

  const offs = [store.on("requests", render)];
  render();
  return { destroy() { offs.forEach((f) => f()); t.destroy(); } };
}
