// views/groups.js: group chats. A group's messages are a conversation
// whose peer is the group's id, so a group opens at /chats/{id} like any
// chat: the same thread and composer as views/chat.js, each incoming
// bubble under its sender's name (in a colour of their own), with files,
// photos and voice notes as in a one-to-one chat (the paper clip, a drop
// on the conversation, a paste, the microphone), and the menu beside each
// bubble (actions.js) as in a one-to-one chat: reply to and react to
// anyone's message, edit and delete for everyone your own; a quote names
// whose message it quotes, a reaction's chip who chose it, by the names
// the bubbles use (only while you are a member: a group left or removed
// from offers no menu). Disappearing messages (timer.js): the header
// shows the group's timer while it is on,
// for everyone, and offers its timer button to admins only; a change of
// it seen while the conversation is open is a line across it, naming no
// one (the node's "group" event says the new timer, not who set it). The
// header names the group and counts its members; a click on it opens the
// group's info beside the conversation: the members, admins marked, and
// for an admin Add members, Make admin / Dismiss as admin, Remove and
// Rename; for everyone Leave group. An invitation opens on who sent it,
// with Join and Decline (a stranger's invitation opens so from the
// requests, views/requests.js, with Block too: joined, it goes to the chat
// list; declined, or declined and its sender blocked, back to the
// requests); a group left or removed from stays readable,
// with a line saying so instead of the composer. Everything follows the
// store's "groups" and "conversations" topics, which "group" events feed.
//
// The API (each answers the group, api.Group):
//   POST /groups {name}                     create; you are its admin
//   POST /groups/{id}/invite {members: []}  handles, pet names or account ids
//   POST /groups/{id}/join                  accept an invitation
//   POST /groups/{id}/leave                 leave, or decline an invitation
//   POST /groups/{id}/remove {member}       admins only
//   POST /groups/{id}/admin {member, admin}
//   POST /groups/{id}/rename {name}
//   POST /contacts/{account}/block          Block on an invitation, after
//                                           leave: blocks who sent it
//   POST /conversations/{id}/timer {seconds}  admins only; answers the
//                                           change (timer_set), not the group
// Messages: POST /messages {to: id, text, reply_to}, POST /files
// (multipart, to: id), GET /conversations/{id}, GET /files/{id}/{message},
// POST /conversations/{id}/read and
// POST /conversations/{id}/messages/{message}/{react|edit|delete}, as in a
// one-to-one chat ("message-updated" events bring the changes).
//
// New group (newGroup) asks for a name and the members, picked from the
// contacts or typed as handles, in one dialog.

import * as api from "../api.js";
import * as store from "../store.js";
import { go, path } from "../nav.js";
import { h, icon, avatar, groupAvatar, showError, toast, confirm, dialog, field, errorBox, shortAccount } from "../ui.js";
import { thread, composeBox, dropFiles } from "./chat.js";
import * as actions from "./actions.js";
import * as timer from "./timer.js";

/** MAX_NAME is the longest group name the app lets you type, in characters
 * (the node counts 64 bytes, and says so when a name is over). */
const MAX_NAME = 64;

const route = (id, action) => `/groups/${api.seg(id)}${action ? "/" + action : ""}`;

/** act runs a group action and takes the group it answers into the store. */
async function act(id, action, body = {}) {
  const g = await api.post(route(id, action), body);
  store.noteGroup(g);
  return g;
}

/** at shows a handle the way the app does: @name, or name~suffix as it is. */
const at = (handle) => (!handle ? "" : handle.startsWith("@") || handle.includes("~") ? handle : "@" + handle);

/** memberName is how the app names member mb: "You", their name here,
 * their handle, else a short account id. */
export function memberName(mb) {
  if (mb.you) return "You";
  const c = store.contactOf(mb.account);
  if (c && c.petname) return c.petname;
  return mb.name || at(mb.handle) || shortAccount(mb.account);
}

/** myName is this account's name for its avatar: its handle. */
function myName() {
  const me = store.state.me;
  return (store.globalHandles()[0] || {}).name || (me && me.handle) || "You";
}

/** count says how many members g has: "3 members". */
const count = (g) => {
  const n = (g.members || []).length;
  return n === 1 ? "1 member" : `${n} members`;
};

/** statusLine is what the place of the composer says when you can't
 * write in g, or "". */
function statusLine(g) {
  if (g.status === "left") return "You left this group. You can still read what's here.";
  if (g.status === "removed") return "You were removed from this group. You can still read what's here.";
  return "";
}

/** detail is the main pane of the group whose id is id; request: it is
 * opened from the requests, as an invitation from a stranger. */
export function detail(el, id, { request = false } = {}) {
  const header = h("header", { class: "chat-header" });
  const body = h("div", { class: "group-body" });
  const foot = h("div", { class: "group-foot" });
  const section = h("section", { class: "chat group-chat", "aria-label": "Group conversation" }, header, body, foot);
  const layout = h("div", { class: "chat-layout" }, section);
  el.append(layout);
  // Files dropped on the conversation wait in the composer, once there
  // is one to write in.
  dropFiles(section, () => composer);

  // The header: the group's name (a heading, and the button that opens
  // the group's info, whose target covers the avatar and the count too)
  // and its number of members, after the timer's badge while one is on.
  // Drawn once, then only its words change, so that the button keeps the
  // focus.
  const panelId = "group-info-" + id;
  const peerEl = h("button", { type: "button", class: "peer-open", title: "Group info", "aria-expanded": "false", "aria-controls": panelId, on: { click: () => (panel ? closePanel() : openPanel()) } });
  const sub = h("span", { class: "chat-sub" });
  // The timer button, in the header while you are an admin (the node
  // refuses anyone else); its answer, not a message of the group's, says
  // the group's new timer.
  const group = () => store.groupOf(id);
  const timerOf = () => (group() || {}).timer || 0;
  const timerCtl = timer.control(id, {
    current: timerOf,
    chosen: (m) => { const g = group(); if (g && !destroyed) store.noteGroup({ ...g, timer: m.timer_set || 0 }); },
    note: "New messages disappear for everyone in the group after:",
  });
  const actionsEl = h("div", { class: "chat-actions" });
  const back = request ? "Back to requests" : "Back to chats";
  header.append(h("a", { class: "icon-btn back", href: request ? "/requests" : "/chats", "aria-label": back, title: back }, icon("back")),
    h("div", { class: "chat-peer" }, groupAvatar(id), h("span", { class: "chat-peer-text" }, h("h1", { class: "chat-title" }, peerEl), sub)), actionsEl);

  let t = null; // the thread, once the group is more than an invitation
  let composer = null;
  let panel = null; // the group's info: {el, render(g), destroy()}
  let shown = ""; // what the pane is drawn for
  let destroyed = false;
  let seenTimer = null; // the group's timer when last drawn
  let answered = false; // a request answered: the pane is on its way out

  // leaveRequests leaves an invitation opened from the requests once it
  // is answered, here or on another device: for the group's chat once
  // joined, else for the requests.
  function leaveRequests(status) {
    if (answered) return;
    answered = true;
    go(status === "joined" ? path("chats", id) : "/requests", { replace: true });
  }

  function render() {
    const g = group();
    if (!g || destroyed) return;
    if (request && g.status !== "invited") {
      leaveRequests(g.status);
      return;
    }
    store.learnNames(g);
    const name = g.name || "Group";
    peerEl.textContent = name;
    peerEl.setAttribute("aria-label", `Group info for ${name}, ${count(g)}`);
    const secs = g.timer || 0;
    const words = h("span", { class: "sub-text", text: g.status === "invited" ? "Invitation · " + count(g) : count(g) });
    const on = timer.badge(secs);
    if (on) sub.replaceChildren(on, words);
    else sub.replaceChildren(words);
    // Drawn again only when what it shows changed, so that the focus
    // stays where it is (the list behind it changes often).
    const sig = JSON.stringify(g.status === "invited" ? [g.status, g.name, g.invited_by_name, g.request, (g.members || []).map(memberName)] : [g.status]);
    if (sig !== shown) {
      shown = sig;
      if (g.status === "invited") drawInvitation(g);
      else drawConversation(g);
    }
    if (composer) {
      const removed = store.state.revoked;
      if (removed) composer.setEnabled(false, "This device was removed from your account, so it can't send messages.");
      else composer.setEnabled(g.status === "joined");
      // Reactions, edits and deletions are messages to the group too:
      // no menu while you can't write there.
      section.classList.toggle("locked", !composer.enabled());
      if (!composer.enabled()) actions.closeMenu();
    }
    if (t && seenTimer !== null && secs !== seenTimer) t.timerLine(secs);
    seenTimer = secs;
    const admin = !!g.admin && g.status === "joined";
    if (admin && !timerCtl.el.isConnected) actionsEl.append(timerCtl.el);
    else if (!admin) timerCtl.el.remove();
    timerCtl.setEnabled(admin && !store.state.revoked);
    timerCtl.update();
    if (panel) panel.render(g);
  }

  // drawInvitation shows an invitation: who sent it, to what, with whom,
  // and the bar to join or decline it.
  function drawInvitation(g) {
    const by = g.invited_by_name || "";
    const others = (g.members || []).filter((mb) => !mb.you).map(memberName);
    body.replaceChildren(h("div", { class: "invite-card" },
      groupAvatar(id, "xl"),
      h("h2", { text: g.name }),
      h("p", { text: by ? `${by} invited you to join this group.` : "You're invited to join this group." }),
      others.length ? h("p", { class: "muted", text: "Members: " + others.join(", ") }) : null,
      g.request ? h("div", { class: "banner" }, icon("info"), h("div", null,
        h("strong", { text: `${by || "Who invited you"} isn't in your contacts` }),
        h("p", { text: "Join only if you know them: its members will read what you write there." }))) : null));
    const join = h("button", { type: "button", class: "btn primary", text: "Join", "data-autofocus": "", on: { click: () => answer(true) } });
    const decline = h("button", { type: "button", class: "btn", text: "Decline", on: { click: () => answer(false) } });
    // From the requests, as for a stranger's first message, Block too:
    // the invitation declined and who sent it blocked. Its name says whom
    // (the confirmation's button is "Block").
    const who = by || shortAccount(g.invited_by);
    const block = request && g.invited_by ? h("button", { type: "button", class: "btn danger", text: "Block", "aria-label": `Block ${who}`, on: { click: onBlock } }) : null;
    const buttons = [join, decline, block].filter(Boolean);
    const enable = (on) => buttons.forEach((b) => { b.disabled = !on; });
    foot.replaceChildren(h("div", { class: "request-bar", role: "group", "aria-label": "Invitation" },
      h("p", { class: "request-text", text: `Join "${g.name}" to read and write its messages.` }),
      h("div", { class: "request-actions" }, block, decline, join)));

    async function onBlock() {
      if (!(await confirm(`Block ${who}?`, `You'll decline "${g.name}". Their messages, calls and invitations will be dropped without telling them. You can unblock them in Contacts.`, "Block", true))) return;
      enable(false);
      // The pane stays until both are done: declined, the group would
      // send it back to the requests before the block.
      answered = true;
      try {
        await act(id, "leave");
        await api.post(`/contacts/${api.seg(g.invited_by)}/block`);
        toast(`${who} is blocked`);
        await Promise.all([store.load("contacts"), store.load("requests")]);
        go("/requests", { replace: true });
      } catch (err) {
        answered = false;
        enable(true);
        showError(err, "Could not block");
        render(); // declined, but not blocked: back to the requests
      }
    }

    async function answer(yes) {
      enable(false);
      try {
        await act(id, yes ? "join" : "leave");
        if (!yes) toast("Invitation declined");
        if (request) {
          leaveRequests(yes ? "joined" : "left");
        } else if (!yes) {
          go("/chats", { replace: true });
        } else if (composer && !destroyed) {
          composer.el.querySelector("textarea").focus();
        }
      } catch (err) {
        enable(true);
        showError(err, yes ? "Could not join" : "Could not decline");
      }
    }
  }

  // drawConversation shows the messages, and under them the composer
  // while you are a member, else why you can't write.
  function drawConversation(g) {
    if (!t) {
      // The messages' menus reply and edit through the composer, made
      // after the thread.
      const hooks = {};
      t = thread(id, { readOnly: false, group: true, hooks });
      composer = composeBox(id, t);
      hooks.reply = composer.reply;
      hooks.edit = composer.edit;
      hooks.changed = composer.changed;
    }
    // The messages go back in place of an invitation drawn meanwhile (a
    // group can come back as "invited" after you joined, from an event
    // that was late).
    if (t.el.parentNode !== body) body.replaceChildren(t.el);
    const why = statusLine(g);
    composer.el.hidden = !!why;
    foot.replaceChildren(composer.el);
    if (why) foot.append(h("p", { class: "group-status", role: "status" }, icon("info"), h("span", { text: why })));
  }

  function openPanel() {
    const g = group();
    if (!g || panel) return;
    panel = infoPanel(id, panelId, closePanel);
    layout.append(panel.el);
    layout.classList.add("with-panel");
    peerEl.setAttribute("aria-expanded", "true");
    panel.render(g);
    panel.el.querySelector(".panel-close").focus();
  }

  function closePanel() {
    if (!panel) return;
    const hadFocus = panel.el.contains(document.activeElement);
    panel.destroy();
    panel.el.remove();
    panel = null;
    layout.classList.remove("with-panel");
    peerEl.setAttribute("aria-expanded", "false");
    if (hadFocus) peerEl.focus();
  }

  // Escape in the group's info closes it (and not the conversation).
  layout.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && panel && panel.el.contains(e.target)) { e.preventDefault(); e.stopPropagation(); closePanel(); }
  });

  const offs = [store.on("groups", render), store.on("conversations", render), store.on("contacts", render), store.on("revoked", render)];
  if (group()) {
    render();
  } else {
    // Opened before the groups were read (a reload, a link): ask for it.
    body.replaceChildren(h("p", { class: "group-loading muted", text: "Loading the group…" }));
    api.get(route(id)).then((g) => { if (!destroyed) store.noteGroup(g); }).catch((err) => {
      if (destroyed) return;
      body.replaceChildren(h("div", { class: "empty" }, icon("users", "empty-icon"), h("h2", { text: "No such group" }), h("p", { text: err.message })));
    });
  }
  return {
    destroy() {
      destroyed = true;
      offs.forEach((f) => f());
      closeMenu();
      timerCtl.destroy();
      if (panel) panel.destroy();
      if (composer) composer.destroy();
      if (t) t.destroy();
    },
  };
}

/** infoPanel is the group's info beside its conversation: its name, its
 * members, and what you may do there. */
function infoPanel(id, panelId, onClose) {
  const titleId = panelId + "-title";
  const content = h("div", { class: "panel-body" });
  const el = h("aside", { class: "group-panel", id: panelId, "aria-labelledby": titleId },
    h("header", { class: "panel-header" },
      h("button", { type: "button", class: "icon-btn panel-close", "aria-label": "Close group info", title: "Close (Escape)", on: { click: onClose } }, icon("x")),
      h("h2", { id: titleId, text: "Group info" })),
    content);
  let sig = "";

  function render(g) {
    const s = JSON.stringify([g, store.state.contacts.map((c) => [c.account, c.petname])]);
    if (s === sig) return;
    sig = s;
    // Drawn anew; the focus goes back to the control it was on.
    const focusKey = document.activeElement && content.contains(document.activeElement) ? document.activeElement.dataset.key : "";
    const admin = g.admin && g.status === "joined";
    const members = [...(g.members || [])].sort((a, b) => (!!b.you - !!a.you) || (!!b.admin - !!a.admin) || memberName(a).localeCompare(memberName(b)));
    content.replaceChildren(h("div", null,
      h("div", { class: "group-profile" },
        groupAvatar(id, "xl"),
        h("div", { class: "group-name-line" },
          h("h3", { class: "profile-name", text: g.name }),
          admin ? h("button", { type: "button", class: "icon-btn small", "aria-label": "Rename group", title: "Rename group", dataset: { key: "rename" }, on: { click: () => rename(g) } }, icon("pencil")) : null),
        h("p", { class: "muted", text: "Group · " + count(g) }),
        statusLine(g) ? h("p", { class: "group-status", text: statusLine(g) }) : null),
      h("section", { class: "group-members", "aria-label": "Members" },
        h("h3", { text: count(g) }),
        admin ? h("button", { type: "button", class: "row-link add-members", dataset: { key: "add" }, on: { click: () => addMembers(g) } },
          h("span", { class: "avatar group-new", "aria-hidden": "true" }, icon("groupAdd")), h("span", { class: "row-name", text: "Add members" })) : null,
        h("ul", { role: "list", class: "members" }, members.map((mb) => memberRow(g, mb, admin)))),
      g.status === "joined" ? h("button", { type: "button", class: "btn danger-outline leave-btn", dataset: { key: "leave" }, on: { click: () => leave(g) } }, icon("leave"), "Leave group") : null));
    if (focusKey) {
      const f = content.querySelector(`[data-key="${CSS.escape(focusKey)}"]`);
      if (f) f.focus();
    }
  }

  function memberRow(g, mb, admin) {
    const name = memberName(mb);
    const handle = at(mb.handle);
    const items = [];
    if (!mb.you) {
      items.push({ label: `Message ${name}`, icon: "chat", run: () => go(path("chats", mb.account)) });
      if (admin) {
        items.push(mb.admin
          ? { label: "Dismiss as admin", icon: "userMinus", run: () => setAdmin(g, mb, false) }
          : { label: "Make admin", icon: "star", run: () => setAdmin(g, mb, true) });
        items.push({ label: "Remove from group", icon: "trash", danger: true, run: () => remove(g, mb) });
      }
    }
    const more = items.length ? h("button", {
      type: "button", class: "icon-btn small member-more", "aria-label": `Options for ${name}`, title: "Options", "aria-haspopup": "menu", "aria-expanded": "false",
      dataset: { key: "more-" + mb.account }, on: { click: (e) => openMenu(e.currentTarget, items) },
    }, icon("more")) : null;
    return h("li", { class: "member", dataset: { account: mb.account } },
      avatar(mb.you ? myName() : name, mb.account),
      h("span", { class: "member-text" },
        h("span", { class: "member-name", text: name }),
        handle && handle !== name ? h("span", { class: "member-sub", text: handle }) : null),
      mb.admin ? h("span", { class: "tag admin", text: "Admin" }) : null,
      more);
  }

  async function setAdmin(g, mb, yes) {
    try {
      await act(id, "admin", { member: mb.account, admin: yes });
      toast(yes ? `${memberName(mb)} is now an admin` : `${memberName(mb)} is no longer an admin`);
    } catch (err) { showError(err, yes ? "Could not make them admin" : "Could not dismiss them as admin"); }
  }

  async function remove(g, mb) {
    const name = memberName(mb);
    if (!(await confirm(`Remove ${name}?`, `${name} will no longer get the messages of "${g.name}".`, "Remove", true))) return;
    try {
      await act(id, "remove", { member: mb.account });
      toast(`${name} was removed from the group`);
    } catch (err) { showError(err, `Could not remove ${name}`); }
  }

  async function leave(g) {
    if (!(await confirm(`Leave "${g.name}"?`, "You'll stop getting its messages. What's here stays for you to read.", "Leave", true))) return;
    try {
      await act(id, "leave");
      toast(`You left "${g.name}"`);
    } catch (err) { showError(err, "Could not leave the group"); }
  }

  function rename(g) {
    dialog({
      title: "Rename group",
      build: (close) => {
        const f = field("Group name", { value: g.name, maxlength: MAX_NAME, autocomplete: "off", autofocus: true, required: true });
        const out = h("div");
        const save = h("button", { type: "submit", class: "btn primary", text: "Save" });
        return h("form", {
          on: {
            submit: async (e) => {
              e.preventDefault();
              const name = f.input.value.trim();
              if (!name) { out.replaceChildren(errorBox({ message: "A group needs a name" })); return; }
              if (name === g.name) { close(); return; }
              save.disabled = true;
              try {
                await act(id, "rename", { name });
                close();
              } catch (err) {
                save.disabled = false;
                out.replaceChildren(errorBox(err));
              }
            },
          },
        }, f.el, out, h("div", { class: "dialog-actions" },
          h("button", { type: "button", class: "btn", text: "Cancel", on: { click: close } }), save));
      },
    });
  }

  function addMembers(g) {
    pickMembers({
      title: `Add members to "${g.name}"`,
      verb: "Add",
      exclude: new Set((g.members || []).map((mb) => mb.account)),
      run: async (members) => {
        await act(id, "invite", { members });
        toast(members.length === 1 ? "1 member added" : `${members.length} members added`);
      },
    });
  }

  return {
    el,
    render,
    destroy() { closeMenu(); },
  };
}

let menu = null; // the open member menu: {el, anchor, close}

function closeMenu() { if (menu) menu.close(false); }

// openMenu opens a small menu of items ({label, icon, danger, run}) under
// anchor: arrow keys move along it, Escape or a click elsewhere closes it.
function openMenu(anchor, items) {
  const again = menu && menu.anchor === anchor;
  closeMenu();
  if (again) return;
  const el = h("div", { class: "msg-menu member-menu", role: "menu", "aria-label": anchor.getAttribute("aria-label") },
    items.map((it) => h("button", {
      type: "button", role: "menuitem", class: "menu-item" + (it.danger ? " danger" : ""),
      on: { click: () => { close(false); it.run(); } },
    }, icon(it.icon), h("span", { text: it.label }))));
  document.body.append(el);
  anchor.setAttribute("aria-expanded", "true");
  const a = anchor.getBoundingClientRect();
  const vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
  el.style.left = Math.max(8, Math.min(a.right - el.offsetWidth, vw - el.offsetWidth - 8)) + "px";
  el.style.top = (a.bottom + 4 + el.offsetHeight > vh - 8 ? Math.max(8, a.top - el.offsetHeight - 4) : a.bottom + 4) + "px";
  const buttons = () => [...el.querySelectorAll("button")];
  const onKey = (e) => {
    const bs = buttons();
    const i = bs.indexOf(document.activeElement);
    let j = -1;
    if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); close(true); return; }
    if (e.key === "ArrowDown") j = (i + 1) % bs.length;
    else if (e.key === "ArrowUp") j = i <= 0 ? bs.length - 1 : i - 1;
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = bs.length - 1;
    else if (e.key === "Tab") { close(true); return; }
    if (j >= 0) { e.preventDefault(); bs[j].focus(); }
  };
  const onDown = (e) => { if (!el.contains(e.target) && !anchor.contains(e.target)) close(false); };
  const onMove = (e) => { if (!el.contains(e.target)) close(false); };
  el.addEventListener("keydown", onKey);
  document.addEventListener("mousedown", onDown, true);
  document.addEventListener("scroll", onMove, true);
  window.addEventListener("resize", onMove);
  function close(refocus) {
    if (!menu || menu.el !== el) return;
    menu = null;
    el.remove();
    anchor.setAttribute("aria-expanded", "false");
    document.removeEventListener("mousedown", onDown, true);
    document.removeEventListener("scroll", onMove, true);
    window.removeEventListener("resize", onMove);
    if (refocus && anchor.isConnected) anchor.focus();
  }
  menu = { el, anchor, close };
  buttons()[0].focus({ preventScroll: true });
}

/** newGroup asks for a group's name and members, creates it and opens it. */
export function newGroup() {
  pickMembers({
    title: "New group",
    verb: "Create group",
    named: true,
    exclude: new Set(),
    run: async (members, name) => {
      const g = await api.post("/groups", { name });
      store.noteGroup(g);
      if (!members.length) return { g };
      try {
        return { g: await act(g.id, "invite", { members }) };
      } catch (err) {
        return { g, err };
      }
    },
    // Once the dialog is closed: the new group opens, and the focus goes
    // to its composer.
    done: ({ g, err }) => {
      go(path("chats", g.id));
      if (err) showError(err, "The group is made, but its members could not be added");
    },
  });
}

/** looksLikeHandle: q may name someone who is not a contact: @name,
 * name~suffix or an account id. */
const looksLikeHandle = (q) => /^@[\p{L}\p{N}_.-]+$/u.test(q) || /^[\p{L}\p{N}_.-]+~[a-z0-9]+$/u.test(q) || /^csa1[0-9a-z]{20,}$/.test(q);

// pickMembers is the dialog that picks members: contacts ticked in a
// list that a search narrows, or someone else by the handle typed in the
// search. With named, it asks for the group's name first. run(members,
// name) does the work; its error shows in the dialog, which stays open;
// done(what run returned) follows once the dialog is closed.
function pickMembers({ title, verb, named = false, exclude, run, done }) {
  dialog({
    title,
    cls: "picker group-picker",
    build: (close) => {
      const chosen = new Map(); // account id or typed handle → label
      const nameF = named ? field("Group name", { maxlength: MAX_NAME, autocomplete: "off", autofocus: true, placeholder: "What is it about?" }) : null;
      const search = field("Add members", { type: "search", autocomplete: "off", autofocus: !named, placeholder: "Search contacts or type a handle" });
      const chips = h("ul", { role: "list", class: "chips", "aria-label": "Chosen members" });
      const ul = h("ul", { role: "list", class: "rows compact" });
      const out = h("div");
      const ok = h("button", { type: "submit", class: "btn primary", text: verb });

      function draw() {
        chips.replaceChildren(...[...chosen].map(([key, label]) => h("li", { class: "chip" }, h("span", { text: label }),
          h("button", { type: "button", class: "chip-x", "aria-label": `Remove ${label}`, title: "Remove", on: { click: () => { chosen.delete(key); draw(); search.input.focus(); } } }, icon("x")))));
        chips.hidden = chosen.size === 0;
        const q = search.input.value.trim();
        const ql = q.toLowerCase();
        const cs = store.state.contacts.filter((c) => !c.blocked && !exclude.has(c.account) &&
          (!ql || c.petname.toLowerCase().includes(ql) || (c.handle || "").toLowerCase().includes(ql.replace(/^@/, ""))));
        const rows = cs.map((c) => {
          const box = h("input", { type: "checkbox", checked: chosen.has(c.account), on: { change: () => { if (box.checked) chosen.set(c.account, c.petname); else chosen.delete(c.account); draw(); } } });
          return h("li", null, h("label", { class: "row-link pick" }, box, avatar(c.petname, c.account),
            h("span", { class: "row-main" }, h("span", { class: "row-name", text: c.petname }), h("span", { class: "row-preview", text: at(c.handle) }))));
        });
        const exact = cs.some((c) => at(c.handle).toLowerCase() === (q.startsWith("@") ? ql : "@" + ql));
        if (q && looksLikeHandle(q) && !exact && !chosen.has(q)) {
          rows.unshift(h("li", null, h("button", { type: "button", class: "row-link", on: { click: () => { chosen.set(q, q); search.input.value = ""; draw(); search.input.focus(); } } },
            h("span", { class: "avatar group-new", "aria-hidden": "true" }, icon("userPlus")),
            h("span", { class: "row-main" }, h("span", { class: "row-name", text: `Add ${q}` }), h("span", { class: "row-preview", text: "Not in your contacts" })))));
        }
        if (!rows.length) {
          rows.push(h("li", { class: "muted pad", text: store.state.contacts.length ? "No contact matches. Type a handle like @alice to add someone else." : "You have no contacts yet. Type a handle like @alice." }));
        }
        // Kept when only the ticks changed, so the focus stays on its box.
        const focused = document.activeElement;
        const keep = ul.contains(focused) && focused.type === "checkbox" ? focused.closest("label").textContent : null;
        ul.replaceChildren(...rows);
        if (keep) {
          const again = [...ul.querySelectorAll("label")].find((l) => l.textContent === keep);
          if (again) again.querySelector("input").focus();
        }
      }
      search.input.addEventListener("input", draw);
      search.input.addEventListener("keydown", (e) => {
        // Enter in the search adds the handle typed, rather than submitting.
        if (e.key !== "Enter") return;
        const q = search.input.value.trim();
        if (!q) return;
        e.preventDefault();
        if (looksLikeHandle(q)) { chosen.set(q, q); search.input.value = ""; draw(); }
      });
      draw();

      const form = h("form", {
        on: {
          submit: async (e) => {
            e.preventDefault();
            const name = nameF ? nameF.input.value.trim() : "";
            if (nameF && !name) { out.replaceChildren(errorBox({ message: "Give the group a name" })); nameF.input.focus(); return; }
            if (!named && !chosen.size) { out.replaceChildren(errorBox({ message: "Pick someone to add" })); search.input.focus(); return; }
            ok.disabled = true;
            out.replaceChildren();
            try {
              const r = await run([...chosen.keys()], name);
              close();
              if (done) done(r);
            } catch (err) {
              ok.disabled = false;
              out.replaceChildren(errorBox(err));
            }
          },
        },
      }, nameF ? nameF.el : null, search.el, chips, ul, out,
      h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "btn", text: "Cancel", on: { click: close } }), ok));
      return form;
    },
  });
}
