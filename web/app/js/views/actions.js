// views/actions.js: what a person does to one message of a conversation,
// for chat.js. Each bubble has a "Message actions" button beside it (shown
// on hover and on keyboard focus; a long press on a touch screen) that
// opens a small menu: a row of quick reactions, Reply, Copy, Edit (your
// own text messages) and Delete for everyone (your own messages), the last
// two within EDIT_WINDOW of sending, as the node allows. Here too: the
// quote a reply shows above its text and the reactions under a bubble.
//
// In a group (peer is the group's id) the same, with anyone's message to
// reply to and react to, and every member's reaction (one per account):
// the quote and the reactions name members as the group's bubbles do
// (store.senderName), this account "You". On your own group message the
// menu has Info too: who read it, who has it, and who it still waits for
// (GET /conversations/{peer}/messages/{id}/info, against the members
// now).
//
// The API (all answer the updated message):
//   POST /conversations/{peer}/messages/{id}/react  {emoji}  ("" removes yours)
//   POST /conversations/{peer}/messages/{id}/edit   {text}
//   POST /conversations/{peer}/messages/{id}/delete {}
// and a reply is POST /messages with reply_to. The node folds reactions,
// edits and deletions into their target: pages and events show each
// message as it stands now, and "message-updated" events bring changes.
//
// Text from the network (quotes, emoji) goes in as text, never as HTML.

import * as api from "../api.js";
import * as store from "../store.js";
import { h, icon, srOnly, fileKind, nameColour } from "../ui.js";

/** QUICK are the reactions the menu offers, in order. */
export const QUICK = ["👍", "❤️", "😂", "😮", "😢", "🙏"];

/** EDIT_WINDOW is how long after sending a message may be edited or
 * deleted for everyone (the node's limit: it answers 409 past it). */
export const EDIT_WINDOW = 24 * 3600e3;

const real = (m) => !!m.id && !m.id.startsWith("tmp-") && m.state !== "failed";

/** canDelete: m is yours, sent, not deleted, and young enough. */
export function canDelete(m) {
  return m.direction === "out" && real(m) && !m.deleted && Date.now() - new Date(m.sent_at) < EDIT_WINDOW;
}

/** canEdit: canDelete, and m is text (a file's caption can't be edited). */
export const canEdit = (m) => canDelete(m) && !m.file && !!m.text;

/** canAct: m has a menu at all (not a deleted message, not one still on
 * its way from this tab). */
export const canAct = (m) => real(m) && !m.deleted;

/** me is this account's id, or "" before the node said it. */
const me = () => (store.state.me && store.state.me.account) || "";

/** mine reports whether the reaction r is this account's: in a group,
 * one from this account; in a one-to-one conversation, whatever is not
 * the peer's. */
export const mine = (r, peer) => (store.isGroup(peer) ? !!r.from && r.from === me() : r.from !== peer);

/** nameIn names account, who wrote or reacted in the conversation peer:
 * "You" for this account; in a group, the member as its bubbles name
 * them (hint: how the node calls them, when known); else the peer. */
export function nameIn(peer, account, hint = "") {
  if (!store.isGroup(peer)) return account === peer ? store.nameOf(peer) : "You";
  return account && account === me() ? "You" : store.senderName(peer, account, hint);
}

/** colourIn is the colour of account's name in the group peer, as over
 * their bubbles. */
export function colourIn(peer, account) {
  const g = store.groupOf(peer);
  const place = g ? (g.members || []).findIndex((mb) => mb.account === account) : -1;
  return nameColour(account || "", place);
}

/** people says names in a sentence: "You", "You and Bob", "You, Bob and
 * Carol". */
function people(names) {
  if (names.length < 2) return names.join("");
  return names.slice(0, -1).join(", ") + " and " + names[names.length - 1];
}

/** myReaction is the emoji this account put on m, or "". */
export function myReaction(m, peer) {
  const r = (m.reactions || []).find((x) => mine(x, peer));
  return r ? r.emoji : "";
}

/** withReaction is m's reactions with this account's set to emoji ("" for
 * none): what the node will answer, shown before it does. */
export function withReaction(m, peer, emoji) {
  const me = (store.state.me && store.state.me.account) || "me";
  const rest = (m.reactions || []).filter((x) => !mine(x, peer));
  return emoji ? [...rest, { emoji, from: me }] : rest;
}

/** quoteText says what a quote quotes, in one line: its text, a file's
 * name, or that it was deleted. */
export function quoteText(q) {
  if (q.text) return q.text;
  if (q.file_name) return q.file_name;
  return "This message was deleted";
}

/** quoteOf is the quote of m as a reply to it carries it (the node's
 * shape), for the stand-in of a reply being sent and the reply bar. */
export function quoteOf(m) {
  const gone = m.deleted || !!m.file;
  return { id: m.id, from: m.from || "", from_name: m.from_name || undefined, text: gone ? "" : Array.from(m.text || "").slice(0, 200).join(""), file_name: m.file && !m.deleted ? m.file.name : undefined, direction: m.direction };
}

/** quoteWho names the sender of the quoted message q: "You", the peer,
 * or in a group the member (hint(account) may know their name). */
export function quoteWho(q, peer, hint = () => "") {
  if (q.direction === "out") return "You";
  if (q.direction === "in") return store.isGroup(peer) ? store.senderName(peer, q.from, q.from_name || hint(q.from)) : store.nameOf(peer);
  return nameIn(peer, q.from, q.from_name || hint(q.from));
}

/** quoteBox is the tinted box above a reply's text: who wrote the quoted
 * message (in a group, in their colour) and its first words. With onOpen
 * it is a button that goes to the quoted message; q null means the
 * quoted message isn't on this node. hint(account) is a name the
 * conversation knows for a group's member (one who left, say). */
export function quoteBox(q, peer, onOpen, hint) {
  if (!q) {
    return h("div", { class: "msg-quote missing" }, srOnly("In reply to a message "), h("span", { class: "quote-text", text: "The original message isn't on this device" }));
  }
  const name = quoteWho(q, peer, hint);
  const deleted = !q.text && !q.file_name;
  const body = h("span", { class: "quote-text" + (deleted ? " quote-deleted" : "") },
    q.file_name && !q.text ? icon(fileIcon(q.file_name), "quote-icon") : null,
    h("span", { text: quoteText(q) }));
  const you = name === "You";
  const colour = store.isGroup(peer) && !you ? colourIn(peer, q.from) : "";
  const cls = "msg-quote" + (you ? " you" : "");
  const style = colour ? { borderLeftColor: colour } : null;
  const kids = [srOnly("In reply to "), h("span", { class: "quote-from", text: name, style: colour ? { color: colour } : null }), srOnly(": "), body];
  if (!onOpen) return h("div", { class: cls, style }, kids);
  return h("button", { type: "button", class: cls, style, title: "Go to the original message", on: { click: (e) => { e.stopPropagation(); onOpen(q.id); } } }, kids);
}

function fileIcon(name) {
  const k = fileKind({ type: guessType(name) });
  return { image: "image", voice: "mic", audio: "mic", video: "video" }[k] || "file";
}

function guessType(name) {
  const e = (/\.([a-z0-9]+)$/i.exec(name || "") || [])[1] || "";
  const x = e.toLowerCase();
  if (["jpg", "jpeg", "png", "gif", "webp", "heic"].includes(x)) return "image/" + x;
  if (["webm", "ogg", "m4a", "mp3", "wav", "opus"].includes(x)) return "audio/" + x;
  if (["mp4", "mov", "mkv"].includes(x)) return "video/" + x;
  return "";
}

/** reactorNames names who reacted in list, reactions to one message of
 * the conversation peer: "You" first, then the others as they came. */
export function reactorNames(list, peer, hint = () => "") {
  const yours = list.filter((r) => mine(r, peer)).map(() => "You");
  return [...yours, ...list.filter((r) => !mine(r, peer)).map((r) => (store.isGroup(peer) ? store.senderName(peer, r.from, hint(r.from)) : store.nameOf(peer)))];
}

/** reactionChips are the reactions under a bubble: one chip per emoji,
 * with a count when more than one person chose it; its title (and what a
 * screen reader says) names them. Your own is a button that removes it
 * (onRemove); the others' are labels. Null when none. hint is as for
 * quoteBox. */
export function reactionChips(m, peer, onRemove, hint) {
  const rs = m.reactions || [];
  if (!rs.length || m.deleted) return null;
  const by = new Map(); // emoji → reactions, in the order they came
  for (const r of rs) {
    if (!by.has(r.emoji)) by.set(r.emoji, []);
    by.get(r.emoji).push(r);
  }
  const chips = [];
  for (const [emoji, list] of by) {
    const you = list.some((r) => mine(r, peer));
    const whoText = people(reactorNames(list, peer, hint));
    const parts = [h("span", { class: "reaction-emoji", "aria-hidden": "true", text: emoji }), list.length > 1 ? h("span", { class: "reaction-count", "aria-hidden": "true", text: String(list.length) }) : null];
    if (you) {
      chips.push(h("button", {
        type: "button", class: "reaction mine", title: `${whoText} reacted ${emoji} — click to remove yours`,
        on: { click: (e) => { e.stopPropagation(); onRemove(); } },
      }, parts, srOnly(`${whoText} reacted ${emoji}. Remove your reaction`)));
    } else {
      chips.push(h("span", { class: "reaction", title: `${whoText} reacted ${emoji}` }, parts, srOnly(`${whoText} reacted ${emoji}`)));
    }
  }
  return h("div", { class: "reactions" }, chips);
}

let open = null; // the menu on screen: {el, anchor, close}

/** closeMenu closes the open menu, if any. */
export function closeMenu() { if (open) open.close(); }

/** openMenu opens the menu of message m next to the button anchor. act
 * holds what each item does: reply(m), react(m, emoji), copy(m), edit(m),
 * remove(m) (delete for everyone). Arrow keys move along the menu, Escape
 * closes it, a click elsewhere too. */
export function openMenu(anchor, m, peer, act) {
  const again = open && open.anchor === anchor;
  closeMenu();
  if (again) return; // a second click on the button closes it
  const current = myReaction(m, peer);
  // Each item closes the menu first, the focus back on its button unless
  // the item takes it to the composer.
  const item = (cls, ic, label, fn, refocus = true) => h("button", { type: "button", class: "menu-item " + cls, on: { click: () => { close(refocus); fn(); } } }, icon(ic), h("span", { text: label }));
  const emojis = h("div", { class: "menu-reacts", role: "group", "aria-label": "React" },
    QUICK.map((e) => h("button", {
      type: "button", class: "react-btn" + (e === current ? " chosen" : ""), "aria-pressed": e === current ? "true" : "false",
      title: e === current ? "Remove your reaction" : "React " + e, text: e,
      on: { click: () => { close(true); act.react(m, e === current ? "" : e); } },
    })));
  // Info stays in the menu: its list takes the items' place.
  const showInfo = async () => {
    box.replaceChildren(h("p", { class: "info-title", text: "Asking your node…" }));
    el.focus();
    let body;
    try {
      body = infoOf(await api.get(`/conversations/${api.seg(peer)}/messages/${api.seg(m.id)}/info`), peer);
    } catch (err) {
      body = h("p", { class: "info-title", text: err.message });
    }
    if (!el.isConnected) return; // closed meanwhile
    box.replaceChildren(body);
    place(el, anchor, m.direction);
  };
  const items = [
    item("", "reply", "Reply", () => act.reply(m), false),
    m.text ? item("", "copy", "Copy", () => act.copy(m)) : null,
    canEdit(m) ? item("", "pencil", "Edit", () => act.edit(m), false) : null,
    store.isGroup(peer) && m.direction === "out" && real(m) ? h("button", { type: "button", class: "menu-item", on: { click: showInfo } }, icon("info"), h("span", { text: "Info" })) : null,
    canDelete(m) ? item("danger", "trash", "Delete for everyone", () => act.remove(m)) : null,
  ];
  const box = h("div", { class: "menu-items" }, items);
  const el = h("div", { class: "msg-menu", role: "group", "aria-label": "Actions on this message", tabindex: "-1" }, emojis, box);
  document.body.append(el);
  anchor.setAttribute("aria-expanded", "true");
  place(el, anchor, m.direction);

  const buttons = () => [...el.querySelectorAll("button")];
  const onKey = (e) => {
    const bs = buttons();
    const i = bs.indexOf(document.activeElement);
    let j = -1;
    if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); close(true); return; }
    if (e.key === "ArrowRight" || e.key === "ArrowDown") j = i < 0 ? 0 : (i + 1) % bs.length;
    else if (e.key === "ArrowLeft" || e.key === "ArrowUp") j = i <= 0 ? bs.length - 1 : i - 1;
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = bs.length - 1;
    else if (e.key === "Tab") { close(true); return; } // and Tab goes on from the button
    if (j >= 0) { e.preventDefault(); bs[j].focus(); }
  };
  const onDown = (e) => { if (!el.contains(e.target) && !anchor.contains(e.target)) close(false); };
  // The menu follows its message as the history scrolls (a new message
  // may come meanwhile), and goes when the message is out of sight.
  const onScroll = (e) => {
    if (el.contains(e.target)) return;
    const box = anchor.closest(".messages-scroll");
    const a = anchor.getBoundingClientRect(), b = box && box.getBoundingClientRect();
    if (!anchor.isConnected || (b && (a.bottom < b.top || a.top > b.bottom))) close(false);
    else place(el, anchor, m.direction);
  };
  const onResize = () => close(false);
  el.addEventListener("keydown", onKey);
  document.addEventListener("mousedown", onDown, true);
  document.addEventListener("scroll", onScroll, true);
  window.addEventListener("resize", onResize);

  function close(refocus) {
    if (!open || open.el !== el) return;
    open = null;
    el.remove();
    anchor.setAttribute("aria-expanded", "false");
    document.removeEventListener("mousedown", onDown, true);
    document.removeEventListener("scroll", onScroll, true);
    window.removeEventListener("resize", onResize);
    if (refocus && anchor.isConnected) anchor.focus();
  }
  open = { el, anchor, close };
  (el.querySelector(".react-btn.chosen") || el.querySelector(".react-btn")).focus({ preventScroll: true });
}

/** infoOf lists who read a message of this account in the group peer,
 * who has it and who it waits for (info: the node's answer): each a
 * heading and names, as the group's bubbles name members. */
function infoOf(info, peer) {
  const g = store.groupOf(peer);
  const read = info.read_by || [];
  const has = (info.delivered_to || []).filter((a) => !read.includes(a));
  const waits = ((g && g.members) || []).map((mb) => mb.account).filter((a) => a !== me() && !read.includes(a) && !has.includes(a));
  const section = (title, ic, accounts, cls = "") => accounts.length === 0 ? null : h("div", { class: "info-section " + cls },
    h("h3", { class: "info-title" }, icon(ic), h("span", { text: title })),
    h("ul", { class: "info-names" }, accounts.map((a) => h("li", { text: nameIn(peer, a), style: { color: colourIn(peer, a) } }))));
  return h("div", { class: "msg-info", role: "status" },
    section("Read by", "ticks", read, "read"),
    section("Delivered to", "ticks", has),
    section("Waiting for", "clock", waits),
    read.length + has.length + waits.length === 0 ? h("p", { class: "info-title", text: "No one else is in the group" }) : null);
}

// place puts the menu under the button (above it when there is no room
// below), towards the middle of the conversation.
function place(el, anchor, direction) {
  const a = anchor.getBoundingClientRect();
  const w = el.offsetWidth, ht = el.offsetHeight;
  const vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
  let left = direction === "out" ? a.right - w : a.left;
  left = Math.max(8, Math.min(left, vw - w - 8));
  let top = a.bottom + 4;
  if (top + ht > vh - 8) top = Math.max(8, a.top - ht - 4);
  el.style.left = left + "px";
  el.style.top = top + "px";
}

/** react sets this account's reaction on m to emoji ("" removes it). */
export const react = (peer, m, emoji) => api.post(`/conversations/${api.seg(peer)}/messages/${api.seg(m.id)}/react`, { emoji });

/** edit replaces the text of m, this account's own text message. */
export const edit = (peer, m, text) => api.post(`/conversations/${api.seg(peer)}/messages/${api.seg(m.id)}/edit`, { text });

/** remove deletes m, this account's own message, for everyone. */
export const remove = (peer, m) => api.post(`/conversations/${api.seg(peer)}/messages/${api.seg(m.id)}/delete`, {});
