// views/chat.js: one conversation. History comes from the API newest page
// first (GET /conversations/{peer}?newest=1&limit=50), older pages as the
// person scrolls up, keeping their place. New messages arrive from the
// event stream, states (⏱ ✓ ✓✓ and blue ✓✓) follow `state` events, and
// incoming messages that are on screen while the tab is visible are marked
// read, so that the sender sees it. Files (a photo, a voice note, any file)
// go as messages of their own (POST /files, multipart), picked with the
// paper clip, dropped on the conversation or pasted; attach.js shows them.
// Each message has a menu (actions.js) to reply to it, react to it, and
// edit or delete your own; changes to a message come as `message-updated`
// events and replace its bubble where it is. Disappearing messages
// (timer.js): the header's timer button sets the conversation's timer, a
// change of it is a centred line of the history, and a message that
// expired goes from the screen when its `message-deleted` event comes.
// A group's conversation (views/groups.js) is the same thread and
// composer, files, voice notes, timed messages and the messages' menus
// included, with each sender's name on their bubbles, and on the quotes
// and reactions that name them.
// Typing indicators (with the setting on): the composer tells the node
// while the person types to a contact (typingSignals), and the header
// says "typing…" while the contact types back (store.isTyping).

import * as api from "../api.js";
import * as store from "../store.js";
import { go, path } from "../nav.js";
import { h, icon, iconButton, avatar, clock, dayLabel, stateMark, srOnly, showError, toast, size, duration, fileKind, confirm, isTimerChange, timerChangeText, timerWords } from "../ui.js";
import { fileView, makeThumb, recordVoice, uploadError } from "./attach.js";
import * as actions from "./actions.js";
import * as timer from "./timer.js";
const call = { start: (peer, video) => import("./call.js").then((m) => m.start(peer, video)) };

const PAGE = 50;
const MAX_BYTES = 65472; // the node's message limit (msg.DefaultMaxMessage)
let tmpSeq = 0;

/** detail is the chat pane with the account peer. */
export function detail(el, peer) {
  const header = h("header", { class: "chat-header" });
  const banner = h("div", { class: "chat-banners" });
  // The thread's menus reply and edit through the composer, made after it.
  const hooks = {};
  // The newest timer change this view has seen: the timer until the
  // conversation is in the chat list (a timer set before any message).
  let latest = null;
  hooks.timer = (m) => {
    if (latest && new Date(latest.sent_at) > new Date(m.sent_at)) return;
    latest = m;
    renderHeader();
  };
  const t = thread(peer, { readOnly: false, hooks });
  const composer = composeBox(peer, t);
  hooks.reply = composer.reply;
  hooks.edit = composer.edit;
  hooks.changed = composer.changed;
  // Says "Alice is typing" to screen readers once each time she starts.
  const live = h("p", { class: "sr-only", role: "status", "aria-live": "polite" });
  const wrap = h("section", { class: "chat", "aria-label": "Conversation" }, header, banner, t.el, composer.el, live);
  dropFiles(wrap, () => composer);
  el.append(wrap);

  const timerOf = () => {
    const conv = store.state.conversations.find((x) => x.peer === peer);
    return conv ? conv.timer || 0 : (latest && latest.timer_set) || 0;
  };
  const timerCtl = timer.control(peer, { current: timerOf, chosen: (m) => t.add(m) });
  const callBtns = [iconButton("phone", "Voice call", () => call.start(peer, false)), iconButton("video", "Video call", () => call.start(peer, true))];
  // The header stays; only the peer's part is drawn again, so that its
  // buttons keep the focus (and the timer menu its place) as lists change.
  let peerEl = h("a");
  header.append(h("a", { class: "icon-btn back", href: "/chats", "aria-label": "Back to chats", title: "Back to chats" }, icon("back")),
    peerEl, h("div", { class: "chat-actions" }, timerCtl.el, callBtns));

  function renderHeader() {
    const c = store.contactOf(peer);
    const name = store.nameOf(peer);
    const sub = [];
    if (c && c.handle) sub.push(c.handle.includes("~") ? c.handle : "@" + c.handle);
    const typing = store.isTyping(peer);
    const el = h("a", { class: "chat-peer", href: path("contacts", peer), title: "Contact info", "aria-label": `Contact info for ${name}` },
      avatar(name, peer),
      h("span", { class: "chat-peer-text" },
        h("h1", { class: "chat-title", text: name }),
        h("span", { class: "chat-sub" },
          timer.badge(timerOf()),
          c && c.verified && !c.key_changed ? h("span", { class: "verified" }, icon("shield"), "Verified") : null,
          h("span", { class: "sub-text", text: sub.join(" · ") || (c ? "" : "Not in your contacts"), hidden: typing }),
          h("span", { class: "typing", text: "typing…", hidden: !typing }))));
    peerEl.replaceWith(el);
    peerEl = el;
    timerCtl.update();
    // A removed device neither writes nor calls (the banner says why).
    const removed = store.state.revoked;
    for (const b of callBtns) b.disabled = removed;
    banner.replaceChildren();
    if (c && c.key_changed) {
      banner.append(h("div", { class: "banner danger", role: "alert" }, icon("alert"),
        h("div", null,
          h("strong", { text: `${name}'s key has changed` }),
          h("p", { text: "Their handle now points to a different key. They may have set up callsign again — or someone may be pretending to be them. New messages are held back until you compare safety numbers." })),
        h("a", { class: "btn", href: path("contacts", peer), text: "Compare safety numbers" })));
    }
    if (c && c.blocked) {
      banner.append(h("div", { class: "banner" }, icon("info"), h("div", null, h("strong", { text: `You blocked ${name}` }), h("p", { text: "Their messages and calls are dropped. Unblock them to write again." })),
        h("button", {
          type: "button", class: "btn", text: "Unblock", on: {
            click: async () => {
              try { await api.post(`/contacts/${api.seg(peer)}/unblock`); await store.load("contacts"); }
              catch (err) { showError(err, "Could not unblock"); }
            },
          },
        })));
    }
    if (removed) composer.setEnabled(false, "This device was removed from your account, so it can't send messages.");
    else composer.setEnabled(!(c && (c.blocked || c.key_changed)));
    // Reactions, edits, deletions and timer changes are messages too:
    // none while writing is off.
    wrap.classList.toggle("locked", !composer.enabled());
    timerCtl.setEnabled(composer.enabled());
    if (!composer.enabled()) actions.closeMenu();
  }

  // "typing…" takes the place of the handle under the name while the
  // contact types.
  function showTyping(who) {
    if (who !== peer) return;
    const on = store.isTyping(peer);
    const text = peerEl.querySelector(".sub-text"), typing = peerEl.querySelector(".typing");
    if (text) text.hidden = on;
    if (typing) typing.hidden = !on;
    live.textContent = on ? `${store.nameOf(peer)} is typing` : "";
  }

  const offs = [store.on("contacts", renderHeader), store.on("conversations", renderHeader), store.on("revoked", renderHeader), store.on("typers", showTyping)];
  renderHeader();
  return {
    destroy() { offs.forEach((f) => f()); timerCtl.destroy(); composer.destroy(); t.destroy(); },
  };
}

/** dropFiles lets files be dropped on wrap, a conversation's section:
 * while they are dragged over it a zone says they will be sent, and
 * dropped they wait in the composer like picked ones. box() is the
 * composer, or null while there is none (a group's invitation); nothing
 * is taken while it is off. */
export function dropFiles(wrap, box) {
  const drop = h("div", { class: "drop-zone", hidden: true }, icon("clip"), h("span", { text: "Drop files to send them" }));
  wrap.append(drop);
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
  const open = () => { const c = box(); return c && c.enabled() ? c : null; };
  let depth = 0;
  wrap.addEventListener("dragenter", (e) => {
    if (!hasFiles(e) || !open()) return;
    e.preventDefault();
    depth++;
    drop.hidden = false;
  });
  wrap.addEventListener("dragover", (e) => {
    if (!hasFiles(e) || !open()) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  });
  wrap.addEventListener("dragleave", () => { if (--depth <= 0) { depth = 0; drop.hidden = true; } });
  wrap.addEventListener("drop", (e) => {
    depth = 0;
    drop.hidden = true;
    if (!hasFiles(e)) return;
    e.preventDefault();
    const c = open();
    if (c) c.stage([...e.dataTransfer.files]);
  });
}

/** thread is the scrolling message history with peer. With readOnly
 * (a message request), nothing is marked read and messages have no menu.
 * With group (peer is a group's id), each incoming bubble shows its
 * sender's name, as do the quotes of their messages and the reactions
 * they chose.
 * hooks.reply(m) and hooks.edit(m) take a message to the composer,
 * hooks.changed(m) tells it of a message's new form, and hooks.timer(m)
 * tells the header of a change of the disappearing-message timer. */
export function thread(peer, { readOnly, group = false, hooks = {} }) {
  const list = h("ol", { class: "messages", role: "list", "aria-label": "Messages" });
  const jump = h("button", { type: "button", class: "jump", hidden: true, "aria-label": "Jump to the newest message", on: { click: () => toBottom(true) } }, icon("down"));
  const older = h("div", { class: "older-status", role: "status" });
  const warning = h("div", { class: "page-warning", hidden: true });
  const scroller = h("div", { class: "messages-scroll", tabindex: "0", "aria-label": "Message history" }, older, warning, list);
  const el = h("div", { class: "thread" }, scroller, jump);

  const msgs = []; // oldest first
  const byId = new Map(); // id → {m, li}
  const pendingStates = new Map(); // states that arrived before their message
  const pendingFiles = new Map(); // the same for `file` events
  let next = "";
  let loading = false;
  let unseen = 0;
  let destroyed = false;

  const toRead = new Set();
  const onScreen = new Set();
  let readTimer = 0;

  const io = readOnly ? null : new IntersectionObserver((entries) => {
    for (const e of entries) {
      const id = e.target.dataset.id;
      if (e.isIntersecting) onScreen.add(id);
      else onScreen.delete(id);
    }
    queueRead();
  }, { root: scroller, threshold: 0.6 });

  function queueRead() {
    if (readOnly || document.visibilityState !== "visible") return;
    for (const id of onScreen) {
      const x = byId.get(id);
      if (x && x.m.direction === "in" && x.m.state !== "read") toRead.add(id);
    }
    if (toRead.size) { clearTimeout(readTimer); readTimer = setTimeout(flushRead, 200); }
  }

  async function flushRead() {
    const ids = [...toRead];
    toRead.clear();
    if (!ids.length || destroyed) return;
    try {
      await api.post(`/conversations/${api.seg(peer)}/read`, { ids });
      for (const id of ids) {
        const x = byId.get(id);
        if (x) { x.m.state = "read"; if (io) io.unobserve(x.li); }
      }
      const conv = store.state.conversations.find((c) => c.peer === peer);
      if (conv) { conv.unread = Math.max(0, (conv.unread || 0) - ids.length); store.emit("conversations", store.state.conversations); }
      store.refresh("conversations", 300);
    } catch (err) {
      console.warn("mark read", err.message);
    }
  }

  const onVisible = () => { if (document.visibilityState === "visible") queueRead(); };
  document.addEventListener("visibilitychange", onVisible);

  const who = (m) => (m.direction === "out" ? "You" : group ? senderName(m) : store.nameOf(peer));

  const senderName = (m) => store.senderName(peer, m.from, m.from_name);

  // hint is how the node named account on a message of theirs on screen:
  // the name of a member who has left the group, whom its members no
  // longer name, for the quotes and reactions that are theirs.
  const hint = (account) => {
    if (!group || !account) return "";
    for (const y of byId.values()) if (y.m.from === account && y.m.from_name) return y.m.from_name;
    return "";
  };

  // names are the names the item of m shows for people of a group (its
  // sender, the quote's, who reacted): when they change, it is redrawn.
  const names = (m) => !group ? "" : JSON.stringify([m.direction === "in" ? senderName(m) : "",
    m.quote ? actions.quoteWho(m.quote, peer, hint) : "", actions.reactorNames(m.reactions || [], peer, hint)]);

  // sender is the name over an incoming group bubble, in the sender's
  // colour; only the first of a run of theirs shows it (style.css), and
  // screen readers hear the name from srOnly instead.
  const sender = (m) => {
    if (!group || m.direction !== "in") return null;
    return h("span", { class: "sender", "aria-hidden": "true", text: senderName(m), style: { color: actions.colourIn(peer, m.from) } });
  };

  // build makes the item of message m; x is its entry in byId, which keeps
  // the view of its file across rebuilds.
  function build(m, x) {
    x.names = names(m);
    if (isTimerChange(m)) {
      // Not a bubble: a line across the conversation, as the day's. A
      // group's (timerLine) names no one: its change has no author.
      const text = !group ? timerChangeText(m, store.nameOf(peer))
        : m.timer_set > 0 ? `Disappearing messages: ${timerWords(m.timer_set)}` : "Disappearing messages turned off";
      return h("li", { class: "msg msg-system", dataset: { id: m.id } },
        h("p", { class: "system-line" }, icon("timer"), h("span", { text })));
    }
    const meta = h("span", { class: "meta" },
      m.edited && !m.deleted ? h("span", { class: "msg-edited", title: "Edited", text: "edited" }) : null,
      m.deleted ? null : timer.expiryMark(m),
      h("time", { datetime: m.sent_at, text: clock(new Date(m.sent_at)) }));
    if (m.deleted) {
      // Nothing of it is left: no file, no quote, no reactions, no menu.
      if (x.view) { x.view.destroy(); x.view = null; }
      return h("li", { class: "msg " + m.direction, dataset: { id: m.id } },
        h("div", { class: "bubble deleted" }, srOnly(who(m) + ": "), sender(m),
          h("p", { class: "text msg-deleted" }, icon("ban"), h("span", { text: m.direction === "out" ? "You deleted this message" : "This message was deleted" })), meta));
    }
    if (m.direction === "out") meta.append(stateMark(m.state));
    let cls = "bubble";
    if (m.file) {
      if (!x.view) {
        x.view = fileView(m, {
          auto: !readOnly, local: m.local || localBlobs.get(m.id) || null,
          onCancel: m.upload ? () => m.upload.abort.abort() : null,
        });
      }
      cls += " has-file kind-" + fileKind(m.file) + (m.text ? "" : " no-caption") + (m.local ? " local" : "");
    }
    const text = h("p", { class: "text", text: m.text, hidden: !!m.file && !m.text });
    const quote = m.reply_to ? actions.quoteBox(m.quote, peer, reveal, hint) : null;
    if (quote) cls += " has-quote";
    // A file's caption and time go under it, as a block of their own.
    const bubble = m.file ? h("div", { class: cls }, srOnly(who(m) + ": "), sender(m), quote, x.view.el, h("div", { class: "bubble-foot" }, text, meta))
      : h("div", { class: cls }, srOnly(who(m) + ": "), sender(m), quote, text, meta);
    const chips = actions.reactionChips(m, peer, () => react(x.m, ""), hint);
    if (chips) bubble.append(chips);
    const li = h("li", { class: "msg " + m.direction + (chips ? " has-reactions" : ""), dataset: { id: m.id } }, bubble);
    if (!readOnly && actions.canAct(m)) {
      const more = h("button", {
        type: "button", class: "msg-actions", "aria-label": "Message actions", title: "Message actions", "aria-expanded": "false",
        on: { click: (e) => actions.openMenu(e.currentTarget, x.m, peer, act) },
      }, icon("more"));
      // Beside the bubble, towards the middle of the conversation.
      if (m.direction === "out") li.prepend(more);
      else li.append(more);
      // A long press on a touch screen opens the menu too.
      bubble.addEventListener("contextmenu", (e) => {
        if (!matchMedia("(hover: none)").matches || e.target.closest("a, audio, video") || li.closest(".locked")) return;
        e.preventDefault();
        actions.openMenu(more, x.m, peer, act);
      });
    }
    if (m.failedError) {
      li.append(h("div", { class: "msg-error" }, h("span", { text: m.failedError }),
        h("button", { type: "button", class: "link-btn", text: "Send again", on: { click: () => resend(m) } })));
    }
    return li;
  }

  // rebuild draws the item of x again, in its place.
  function rebuild(x) {
    const old = x.li;
    if (old.querySelector(".msg-actions[aria-expanded=true]")) actions.closeMenu();
    const focused = old.contains(document.activeElement) ? document.activeElement.className : "";
    const li = build(x.m, x);
    li.classList.toggle("cont", old.classList.contains("cont"));
    if (old.isConnected) old.replaceWith(li);
    if (io) {
      io.unobserve(old);
      if (x.m.direction === "in" && x.m.state !== "read") io.observe(li);
    }
    x.li = li;
    if (focused) {
      const f = li.querySelector("." + focused.split(" ")[0]) || li.querySelector(".msg-actions");
      if (f) f.focus({ preventScroll: true });
    }
  }

  // What update compares: the parts of a message a change can touch.
  const look = (m) => JSON.stringify([m.text, !!m.edited, !!m.deleted, m.reactions || [], m.quote || null, m.reply_to || "", !!m.file, m.expires_at || "", m.from_name || ""]);

  /** update shows nm, the new form of a message on screen (from an event,
   * a page read again, or the answer of this tab's own change), and the
   * quotes of it in the replies on screen. */
  function update(nm) {
    const x = byId.get(nm.id);
    if (!x) return;
    const m = x.m;
    const was = look(m);
    if (store.later(m.state, nm.state)) setState(x, nm.state);
    for (const k of ["text", "edited", "deleted", "reactions", "quote", "reply_to", "expires_at"]) m[k] = nm[k];
    if (nm.from_name) m.from_name = nm.from_name;
    if (nm.file) { m.file = nm.file; if (x.view) x.view.update(nm.file); }
    else if (nm.deleted) delete m.file;
    if (look(m) === was) return;
    const stick = atBottom();
    rebuild(x);
    // Replies on screen quote its new text, or that it is gone.
    const q = actions.quoteOf(m);
    for (const y of byId.values()) {
      if (!y.m.quote || y.m.quote.id !== m.id) continue;
      const nq = { ...y.m.quote, text: q.text, file_name: q.file_name };
      if (JSON.stringify(nq) === JSON.stringify(y.m.quote)) continue;
      y.m.quote = nq;
      rebuild(y);
    }
    if (stick) toBottom(false);
    if (hooks.changed) hooks.changed(m);
  }

  // reveal scrolls to the message id (loading older pages until it is
  // there) and highlights it for a moment.
  async function reveal(id) {
    for (let i = 0; !byId.has(id) && (next || loading) && i < 40 && !destroyed; i++) {
      if (loading) await new Promise((r) => setTimeout(r, 150));
      else await loadOlder();
    }
    const x = byId.get(id);
    if (!x) {
      toast("The original message isn't here any more", "it may be older than what this device keeps");
      return;
    }
    x.li.scrollIntoView({ block: "center", behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth" });
    const li = x.li;
    li.classList.remove("flash");
    void li.offsetWidth; // restart the highlight when it shows already
    li.classList.add("flash");
    setTimeout(() => li.classList.remove("flash"), 1800);
  }

  // change runs a change of m (a reaction, an edit): its bubble shows the
  // change at once (the fields in shown), then the node's answer to run();
  // if the node refuses, the bubble goes back and the person is told why.
  // It reports whether the node took the change.
  async function change(m, shown, run, what) {
    const x = byId.get(m.id);
    const before = x ? { ...x.m } : null;
    if (x) update({ ...x.m, ...shown });
    try {
      const nm = await run();
      update(nm);
      store.noteUpdated(nm);
      return true;
    } catch (err) {
      const y = byId.get(m.id);
      if (y && before) update({ ...before, state: y.m.state });
      showError(err, what);
      return false;
    }
  }

  const react = (m, emoji) => change(m, { reactions: actions.withReaction(m, peer, emoji) }, () => actions.react(peer, m, emoji), "Could not react");

  /** edit replaces the text of m, this account's own message. */
  const edit = (m, text) => change(m, { text, edited: true }, () => actions.edit(peer, m, text), "Could not edit the message");

  async function removeForAll(m) {
    const g = group && store.groupOf(peer);
    const whom = group ? `everyone in ${g && g.name ? `"${g.name}"` : "the group"}` : `you and ${store.nameOf(peer)}`;
    const ok = await confirm("Delete this message for everyone?",
      `It will show as "This message was deleted" for ${whom}. They may have seen it already.`, "Delete", true);
    if (!ok) return;
    try {
      const nm = await actions.remove(peer, m);
      update(nm);
      store.noteUpdated(nm);
    } catch (err) {
      showError(err, "Could not delete the message");
    }
  }

  // What the menus of the messages do.
  const act = {
    reply: (m) => { if (hooks.reply) hooks.reply(m); },
    edit: (m) => { if (hooks.edit) hooks.edit(m); },
    react,
    remove: removeForAll,
    copy: async (m) => {
      try { await navigator.clipboard.writeText(m.text); toast("Copied to the clipboard"); }
      catch { toast("Could not copy", "select the text and copy it yourself", "error"); }
    },
  };

  function setState(x, s) {
    if (!store.later(x.m.state, s)) return;
    x.m.state = s;
    const old = x.li.querySelector(".msg-state");
    if (old) old.replaceWith(stateMark(s));
  }

  function insert(m, { render = true } = {}) {
    if (byId.has(m.id)) return false;
    const ps = pendingStates.get(m.id);
    if (ps) { pendingStates.delete(m.id); if (store.later(m.state, ps)) m.state = ps; }
    const x = { m, li: null, view: null };
    x.li = build(m, x);
    byId.set(m.id, x);
    const pf = pendingFiles.get(m.id);
    if (pf) { pendingFiles.delete(m.id); if (x.view && m.file.state !== "ready") x.view.event(pf); }
    // Usually at the end; keep the order by time for late arrivals.
    let i = msgs.length;
    while (i > 0 && new Date(msgs[i - 1].sent_at) > new Date(m.sent_at)) i--;
    msgs.splice(i, 0, m);
    if (io && m.direction === "in" && m.state !== "read") io.observe(x.li);
    if (isTimerChange(m) && hooks.timer) hooks.timer(m);
    if (render) {
      // The usual case, a message after the last one, adds one item; any
      // other lays the whole list out again.
      if (i === msgs.length - 1 && i > 0 && !list.querySelector(".no-msgs")) append(m, msgs[i - 1]);
      else draw();
    }
    return true;
  }

  // append adds the item of m after prev's, with a day separator when the
  // day changes.
  function append(m, prev) {
    const d = new Date(m.sent_at);
    if (new Date(prev.sent_at).toDateString() !== d.toDateString()) {
      list.append(h("li", { class: "day", role: "presentation" }, h("span", { text: dayLabel(d) })));
      prev = null;
    }
    const li = byId.get(m.id).li;
    li.classList.toggle("cont", follows(m, prev));
    list.append(li);
  }

  // follows reports whether m continues prev's run: the same side (in a
  // group, the same sender), within five minutes, neither a line of its own.
  function follows(m, prev) {
    return !!prev && prev.direction === m.direction && (!group || m.direction === "out" || prev.from === m.from) &&
      new Date(m.sent_at) - new Date(prev.sent_at) < 5 * 60e3 && !isTimerChange(m) && !isTimerChange(prev);
  }

  function remove(id) {
    const x = byId.get(id);
    if (!x) return;
    byId.delete(id);
    msgs.splice(msgs.indexOf(x.m), 1);
    if (io) io.unobserve(x.li);
    if (x.view) x.view.destroy();
    draw();
  }

  // expired takes away message id, which the node deleted when its
  // disappearing-message timer ran out: its bubble, its file's object
  // URLs, and a reply or edit of it in the composer.
  function expired(id) {
    pendingStates.delete(id);
    pendingFiles.delete(id);
    localBlobs.delete(id);
    toRead.delete(id);
    onScreen.delete(id);
    const x = byId.get(id);
    if (!x) return;
    if (x.li.querySelector(".msg-actions[aria-expanded=true]")) actions.closeMenu();
    const stick = atBottom();
    remove(id);
    if (stick) toBottom(false);
    if (hooks.changed) hooks.changed({ ...x.m, deleted: true });
  }

  // draw lays the cached message items out with day separators and
  // groups consecutive messages from one side.
  function draw() {
    const nodes = [];
    let day = "", prev = null;
    for (const m of msgs) {
      const d = new Date(m.sent_at);
      const key = d.toDateString();
      if (key !== day) {
        day = key;
        nodes.push(h("li", { class: "day", role: "presentation" }, h("span", { text: dayLabel(d) })));
        prev = null;
      }
      const li = byId.get(m.id).li;
      li.classList.toggle("cont", follows(m, prev));
      nodes.push(li);
      prev = m;
    }
    list.replaceChildren(...nodes);
    if (!msgs.length && !loading) list.append(h("li", { class: "no-msgs", text: readOnly ? "" : "No messages yet. Say hello!" }));
  }

  const atBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;

  function toBottom(smooth) {
    scroller.scrollTo({ top: scroller.scrollHeight, behavior: smooth ? "smooth" : "auto" });
    unseen = 0;
    jump.hidden = true;
  }

  async function loadNewest() {
    loading = true;
    older.textContent = "Loading messages…";
    try {
      const page = await api.get(`/conversations/${api.seg(peer)}?newest=1&limit=${PAGE}`);
      if (destroyed) return;
      next = page.next || "";
      warning.hidden = !page.warning;
      warning.replaceChildren(icon("alert"), h("span", { text: page.warning || "" }));
      const got = new Set();
      for (const m of page.messages || []) {
        got.add(m.id);
        const x = byId.get(m.id);
        if (x) update(m);
        else insert(m, { render: false });
      }
      // Messages that expired while the event stream was away (a
      // reconnection reads the page again) are not on it any more.
      const now = Date.now();
      for (const m of [...msgs]) if (m.expires_at && new Date(m.expires_at) <= now && !got.has(m.id)) expired(m.id);
      older.textContent = "";
      loading = false;
      draw();
      toBottom(false);
      fillScreen();
    } catch (err) {
      loading = false;
      older.replaceChildren(h("span", { class: "error-text", text: err.message }), err.hint ? h("span", { text: " — " + err.hint }) : null);
      draw();
    }
  }

  async function loadOlder() {
    if (!next || loading) return;
    loading = true;
    older.textContent = "Loading older messages…";
    try {
      const page = await api.get(`/conversations/${api.seg(peer)}?newest=1&limit=${PAGE}&cursor=${encodeURIComponent(next)}`);
      if (destroyed) return;
      next = page.next || "";
      const before = scroller.scrollHeight, top = scroller.scrollTop;
      for (const m of page.messages || []) insert(m, { render: false });
      draw();
      scroller.scrollTop = top + (scroller.scrollHeight - before);
      older.textContent = next ? "" : "This is the start of your conversation.";
    } catch (err) {
      older.textContent = "Could not load older messages: " + err.message;
    } finally {
      loading = false;
    }
    fillScreen();
  }

  // fillScreen loads older pages while the history is too short to scroll.
  function fillScreen() {
    if (next && scroller.scrollHeight <= scroller.clientHeight + 10) loadOlder();
    else if (!next && msgs.length) older.textContent = "This is the start of your conversation.";
  }

  // The newest message stays in sight when the history's box shrinks (a
  // reply bar or files over the composer, a smaller window) or a bubble
  // grows (reactions under it).
  let pinned = true;
  const ro = new ResizeObserver(() => { if (pinned) scroller.scrollTop = scroller.scrollHeight; });
  ro.observe(scroller);
  ro.observe(list);

  scroller.addEventListener("scroll", () => {
    pinned = atBottom();
    if (scroller.scrollTop < 300) loadOlder();
    if (atBottom()) { unseen = 0; jump.hidden = true; }
    else jump.hidden = false;
    jump.classList.toggle("has-new", unseen > 0);
  }, { passive: true });

  const pending = new Map(); // temporary id → sameness key, of messages being sent from this tab
  const localBlobs = new Map(); // message id → the Blob this tab sent: shown without a download
  const key = (m) => m.file ? `${m.text}\u0000${m.file.name}\u0000${m.file.size}` : m.text;

  function arrived(m) {
    if (m.direction === "out" && !m.id.startsWith("tmp-")) {
      // The node's event for a message this tab is sending can come before
      // the send returns: it replaces the stand-in, so nothing shows twice.
      for (const [tmp, k] of pending) {
        if (k === key(m)) {
          const x = byId.get(tmp);
          if (x && x.m.local) localBlobs.set(m.id, x.m.local);
          pending.delete(tmp);
          remove(tmp);
          break;
        }
      }
    }
    const stick = atBottom() || m.direction === "out";
    if (!insert(m)) return;
    if (stick) toBottom(false);
    else if (m.direction === "in") { unseen++; jump.hidden = false; jump.classList.add("has-new"); jump.setAttribute("aria-label", `${unseen} new — jump to the newest message`); }
    queueRead();
  }

  // Sending, with the message shown at once as queued; with replyTo, as
  // a reply to that message (quote is how it shows meanwhile).
  async function send(text, { replyTo = "", quote = null } = {}) {
    const tmp = { id: "tmp-" + ++tmpSeq, text, direction: "out", state: "queued", sent_at: new Date().toISOString(), peer };
    if (replyTo) { tmp.reply_to = replyTo; tmp.quote = quote; }
    pending.set(tmp.id, key(tmp));
    // The request leaves before the page draws the stand-in.
    const req = api.post("/messages", replyTo ? { to: peer, text, reply_to: replyTo } : { to: peer, text });
    arrived(tmp);
    try {
      sent(tmp, await req);
    } catch (err) {
      failed(tmp, err, err.message + (err.hint ? " — " + err.hint : ""));
      showError(err, "Message not sent");
    }
  }

  // sent replaces the stand-in tmp with the node's message m.
  function sent(tmp, m) {
    if (pending.delete(tmp.id)) remove(tmp.id);
    if (!byId.has(m.id)) arrived(m);
    if (!store.state.conversations.some((c) => c.peer === peer)) store.refresh("conversations", 0);
    else store.noteSent(m);
    store.refresh("contacts", 300); // writing to someone makes them a contact
  }

  // failed shows the stand-in tmp again as not sent, saying why.
  function failed(tmp, err, why) {
    pending.delete(tmp.id);
    remove(tmp.id);
    tmp.state = "failed";
    tmp.failedError = why;
    tmp.upload = null;
    tmp.id = "tmp-" + ++tmpSeq;
    arrived(tmp);
    // A conflict may be this device's removal, of which the event was missed.
    if (err.status === 409) store.refresh("revoked", 0);
  }

  // Files go one after the other, in the order they were given.
  let uploads = Promise.resolve();

  /** sendFile sends file (a File or Blob with a name) with caption;
   * durationMs for a voice note. Its bubble shows at once with the
   * upload's progress. */
  function sendFile(file, { caption = "", durationMs = 0 } = {}) {
    const name = file.name || "file";
    const tmp = {
      id: "tmp-" + ++tmpSeq, text: caption, direction: "out", state: "queued", sent_at: new Date().toISOString(), peer,
      file: { name, type: file.type || "application/octet-stream", size: file.size, duration_ms: durationMs || undefined, state: "ready" },
      local: file, upload: { abort: new AbortController() }, durationMs,
    };
    pending.set(tmp.id, key(tmp));
    arrived(tmp);
    const view = () => { const x = byId.get(tmp.id); return x && x.view; };
    if (view()) view().uploading(0, file.size);
    const signal = tmp.upload.abort.signal;
    // Cancelled, while it waits its turn or goes: it was never sent.
    signal.addEventListener("abort", () => { pending.delete(tmp.id); remove(tmp.id); }, { once: true });
    uploads = uploads.then(async () => {
      if (signal.aborted) return;
      try {
        const limit = store.state.me && store.state.me.file_limit;
        if (limit && file.size > limit) {
          // Refused here: the node would stop reading a large upload
          // half way, which a browser may report as a lost connection.
          throw Object.assign(new Error(`the file is over this node's limit of ${limitText(limit)}`), { code: "too_large" });
        }
        const thumb = file.type.startsWith("image/") || file.type.startsWith("video/") ? await makeThumb(file) : null;
        const form = new FormData();
        form.append("to", peer);
        if (caption) form.append("caption", caption);
        if (durationMs) form.append("duration_ms", String(Math.round(durationMs)));
        if (thumb) form.append("thumb", thumb, "thumb.jpg");
        form.append("file", file, name);
        const m = await api.upload("/files", form, { signal, onProgress: (n, total) => { const v = view(); if (v) v.uploading(n, total); } });
        localBlobs.set(m.id, file);
        sent(tmp, m);
      } catch (err) {
        if (err.name === "AbortError") return;
        const why = uploadError(err);
        failed(tmp, err, why);
        toast(`${name} not sent`, why, "error");
      }
    });
    return uploads;
  }

  /** limitText is a file limit as the node words it: "100 MiB", "1.5 MiB". */
  function limitText(n) {
    const m = n / (1 << 20);
    return (Number.isInteger(m) ? String(m) : m.toFixed(1)) + " MiB";
  }

  function resend(m) {
    remove(m.id);
    if (m.file && m.local) sendFile(m.local, { caption: m.text, durationMs: m.durationMs });
    else send(m.text, { replyTo: m.reply_to || "", quote: m.quote || null });
  }

  const offs = [
    store.on("message", (m) => { if (m.peer === peer) arrived(m); }),
    store.on("state", (s) => {
      const x = byId.get(s.id);
      if (x) {
        setState(x, s.state);
        if (s.state === "failed" && s.reason && !x.m.failedError) {
          // The recipient refused it: say why, in the bubble.
          x.m.failedError = "Not delivered: " + s.reason;
          rebuild(x);
        }
      } else if (s.peer === peer) pendingStates.set(s.id, s.state);
    }),
    store.on("file", (ev) => {
      if (ev.peer !== peer) return;
      const x = byId.get(ev.id);
      if (x) { if (x.view) x.view.event(ev); }
      else pendingFiles.set(ev.id, ev);
    }),
    store.on("message-updated", (m) => { if (m.peer === peer) update(m); }),
    store.on("message-deleted", (d) => { if (d.peer === peer) expired(d.id); }),
    store.on("resync", loadNewest),
    // A group's members may be named later than their messages came
    // (the node looks up the handles of those who aren't contacts): the
    // bubbles, quotes and reactions that name them follow.
    group ? store.on("groups", () => {
      for (const x of byId.values()) if (x.names !== names(x.m)) rebuild(x);
    }) : () => {},
  ];
  if (!readOnly) store.state.viewing = peer;
  loadNewest();

  /** lastEditable is the newest message of yours that can be edited. */
  function lastEditable() {
    for (let i = msgs.length - 1; i >= 0; i--) if (msgs[i].direction === "out" && actions.canEdit(msgs[i])) return msgs[i];
    return null;
  }

  /** add shows m, a message of this conversation this tab made by other
   * means than send (a change of the timer), and tells the chat list. */
  function add(m) {
    arrived(m);
    store.noteSent(m);
  }

  /** timerLine shows, in a group, that its timer is now seconds: the
   * node keeps no message of a group's timer change, so the line is this
   * view's own, for a change seen while it is open. */
  function timerLine(seconds) {
    arrived({ id: "line-" + ++tmpSeq, peer, direction: "", timer_set: seconds, sent_at: new Date().toISOString() });
  }

  return {
    el,
    send,
    sendFile,
    edit,
    add,
    timerLine,
    lastEditable,
    destroy() {
      destroyed = true;
      actions.closeMenu();
      offs.forEach((f) => f());
      for (const x of byId.values()) if (x.view) x.view.destroy();
      if (io) io.disconnect();
      ro.disconnect();
      clearTimeout(readTimer);
      document.removeEventListener("visibilitychange", onVisible);
      if (store.state.viewing === peer) store.state.viewing = null;
    },
  };
}

const drafts = new Map(); // account → unsent text, kept while the tab lives

// composeBox is the line to write in, with the paper clip to attach files
// (they wait in a strip above it until sent, the text their caption) and
// the microphone to record a voice note (send takes its place once there
// is something to send). Above it, the message being replied to (with a ×
// to let it go), or the one being edited: its text is then in the box, and
// Enter saves it.
export function composeBox(peer, t) {
  const ta = h("textarea", { id: "composer", rows: 1, placeholder: "Write a message", autocomplete: "off", "data-autofocus": "", maxlength: MAX_BYTES, value: drafts.get(peer) || "", "aria-describedby": "composer-note" });
  const count = h("span", { class: "count", "aria-live": "polite" });
  const sendBtn = h("button", { type: "submit", class: "send-btn", "aria-label": "Send", title: "Send (Enter)" }, icon("send"));
  const voiceBtn = h("button", { type: "button", id: "voice", class: "send-btn voice-btn", "aria-label": "Record a voice note", title: "Record a voice note", on: { click: startVoice } }, icon("mic"));
  const picker = h("input", { type: "file", id: "attach-input", multiple: true, hidden: true, tabindex: "-1", "aria-label": "Files to attach",
    on: { change: () => { stage([...picker.files]); picker.value = ""; } } });
  const attachBtn = h("button", { type: "button", id: "attach", class: "icon-btn attach-btn", "aria-label": "Attach a file", title: "Attach a file", on: { click: () => picker.click() } }, icon("clip"));
  const hint = h("p", { class: "composer-note", id: "composer-note", hidden: true });
  const form = h("form", { class: "composer", on: { submit: (e) => { e.preventDefault(); submit(); } } },
    attachBtn, picker, h("label", { for: "composer", class: "sr-only", text: "Message" }), ta, count, sendBtn, voiceBtn);
  const strip = h("ul", { class: "staged", "aria-label": "Files to send" });
  const stripBox = h("div", { class: "staged-box", hidden: true }, strip,
    h("button", { type: "button", class: "btn small", on: { click: () => clearStaged() } }, icon("x"), "Cancel"));
  const recBar = h("div", { class: "recording", hidden: true, role: "group", "aria-label": "Recording a voice note" });
  const replyBar = h("div", { id: "reply-bar", class: "compose-bar", hidden: true, role: "group", "aria-label": "Replying to a message" });
  const editBar = h("div", { id: "edit-bar", class: "compose-bar editing", hidden: true, role: "group", "aria-label": "Editing a message" });
  const el = h("div", { class: "composer-wrap" }, hint, stripBox, replyBar, editBar, form, recBar);

  let staged = []; // {file, url} waiting to be sent
  let on = true;
  let rec = null; // the voice note being recorded
  let replying = null; // the message being replied to
  let editing = null; // {m, draft}: the message being edited, and what the box held before
  const typing = store.isGroup(peer) ? null : typingSignals(peer); // none in groups

  const swap = () => {
    const some = !!ta.value.trim() || staged.length > 0;
    sendBtn.hidden = !some && !editing;
    voiceBtn.hidden = some || !!editing;
  };
  const grow = () => {
    ta.style.height = "auto";
    ta.style.height = Math.min(ta.scrollHeight, 160) + "px";
    const n = new TextEncoder().encode(ta.value).length;
    count.textContent = n > MAX_BYTES - 2000 ? `${n} / ${MAX_BYTES} bytes` : "";
    swap();
  };
  ta.addEventListener("input", () => {
    grow();
    if (editing) return;
    drafts.set(peer, ta.value);
    if (typing) typing.input(ta.value);
  });
  requestAnimationFrame(grow);
  swap();
  ta.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
    else if (e.key === "Escape" && editing) { e.preventDefault(); stopEdit(); }
    else if (e.key === "Escape" && replying) { e.preventDefault(); stopReply(); }
    else if (e.key === "Escape" && staged.length) { e.preventDefault(); clearStaged(); }
    else if (e.key === "ArrowUp" && !ta.value && !staged.length && !editing && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey) {
      // Up in an empty box edits your last message, as in other chat apps.
      const m = t.lastEditable();
      if (m) { e.preventDefault(); edit(m); }
    }
  });
  // A pasted image (a screenshot, a copied picture) waits to be sent; text
  // that comes with a picture (a copy from a document) is pasted as text.
  ta.addEventListener("paste", (e) => {
    const d = e.clipboardData;
    if (!d || !d.files || !d.files.length || d.getData("text/plain")) return;
    e.preventDefault();
    stage([...d.files]);
  });

  function stage(list) {
    if (!on || !list.length) return;
    for (const file of list) {
      const url = file.type.startsWith("image/") ? URL.createObjectURL(file) : "";
      const item = { file, url };
      staged.push(item);
      item.li = h("li", { class: "staged-item" },
        url ? h("img", { src: url, alt: "" }) : h("span", { class: "staged-icon" }, icon(file.type.startsWith("audio/") ? "mic" : file.type.startsWith("video/") ? "video" : "file")),
        h("span", { class: "staged-text" }, h("span", { class: "staged-name", text: file.name || "file" }), h("span", { class: "staged-size", text: size(file.size) })),
        h("button", { type: "button", class: "icon-btn small", "aria-label": `Remove ${file.name}`, title: "Remove", on: { click: () => unstage(item) } }, icon("x")));
      strip.append(item.li);
    }
    stripBox.hidden = false;
    ta.placeholder = "Add a caption";
    swap();
    ta.focus();
  }

  function unstage(item) {
    staged = staged.filter((x) => x !== item);
    if (item.url) URL.revokeObjectURL(item.url);
    item.li.remove();
    if (!staged.length) clearStaged();
    else swap();
  }

  function clearStaged() {
    for (const x of staged) if (x.url) URL.revokeObjectURL(x.url);
    staged = [];
    strip.replaceChildren();
    stripBox.hidden = true;
    ta.placeholder = "Write a message";
    swap();
  }

  function submit() {
    const text = ta.value;
    if (editing) { saveEdit(); return; }
    if (!text.trim() && !staged.length) return;
    if (new TextEncoder().encode(text).length > MAX_BYTES) { toast("That message is too long", "split it into several messages", "error"); return; }
    ta.value = "";
    drafts.delete(peer);
    if (staged.length) {
      // The text is the first file's caption. (Files go without the
      // quote: a reply is a text message.)
      const files = staged.map((x) => x.file);
      clearStaged();
      files.forEach((f, i) => t.sendFile(f, { caption: i === 0 ? text.trim() : "" }));
    } else if (replying) {
      t.send(text, { replyTo: replying.id, quote: actions.quoteOf(replying) });
    } else {
      t.send(text); // first: the request leaves before any layout work
    }
    stopReply(false);
    if (typing) typing.stop();
    grow();
    ta.focus();
  }

  // A bar above the box: what it is about, and a × that lets it go.
  function bar(box, ic, body, label, onClose) {
    box.replaceChildren(
      h("span", { class: "compose-bar-icon" }, icon(ic)), body,
      h("button", { type: "button", class: "icon-btn small", "aria-label": label, title: label + " (Escape)", on: { click: onClose } }, icon("x")));
    box.hidden = false;
  }

  /** reply makes the next message a reply to m (the bar shows its quote). */
  function reply(m, focus = true) {
    if (!on) return;
    if (editing) stopEdit(false);
    replying = m;
    bar(replyBar, "reply", actions.quoteBox(actions.quoteOf(m), peer, null), "Cancel the reply", () => stopReply());
    if (focus) ta.focus();
  }

  function stopReply(focus = true) {
    if (!replying) return;
    replying = null;
    replyBar.hidden = true;
    replyBar.replaceChildren();
    if (focus) ta.focus();
  }

  /** edit puts the text of m, your own message, in the box to change it. */
  function edit(m) {
    if (!on || !actions.canEdit(m) || rec) return;
    stopReply(false);
    if (typing) typing.stop(); // an edit is no new message on its way
    if (!editing) editing = { m, draft: ta.value };
    else editing.m = m;
    bar(editBar, "pencil", h("div", { class: "msg-quote you" }, h("span", { class: "quote-from", text: "Editing" }), h("span", { class: "quote-text", text: m.text })),
      "Cancel editing", () => stopEdit());
    ta.value = m.text;
    stripBox.hidden = true;
    attachBtn.hidden = true;
    sendBtn.setAttribute("aria-label", "Save");
    sendBtn.title = "Save (Enter)";
    sendBtn.replaceChildren(icon("check"));
    grow();
    ta.focus();
    ta.setSelectionRange(ta.value.length, ta.value.length);
  }

  // stopEdit leaves editing, with what the box held before back in it.
  function stopEdit(focus = true) {
    if (!editing) return;
    ta.value = editing.draft;
    editing = null;
    editBar.hidden = true;
    editBar.replaceChildren();
    stripBox.hidden = !staged.length;
    attachBtn.hidden = false;
    sendBtn.setAttribute("aria-label", "Send");
    sendBtn.title = "Send (Enter)";
    sendBtn.replaceChildren(icon("send"));
    grow();
    if (focus) ta.focus();
  }

  async function saveEdit() {
    const { m } = editing;
    const text = ta.value;
    if (!text.trim()) { toast("A message can't be empty", "to remove it, delete it for everyone", "error"); return; }
    if (new TextEncoder().encode(text).length > MAX_BYTES) { toast("That message is too long", "", "error"); return; }
    stopEdit();
    if (text === m.text) return;
    if (!(await t.edit(m, text)) && !editing && !ta.value && on && actions.canEdit(m)) {
      // Not saved: editing again, with the new text, so nothing is lost.
      edit(m);
      ta.value = text;
      grow();
    }
  }

  // Voice notes: the composer gives way to a bar with the time recorded,
  // a cancel and a send.
  async function startVoice() {
    if (rec || !on || editing) return;
    voiceBtn.disabled = true;
    const time = h("span", { class: "rec-time", text: "00:00" });
    try {
      rec = await recordVoice((ms) => { time.textContent = duration(ms / 1000); });
    } catch (err) {
      rec = null;
      voiceBtn.disabled = !on;
      const denied = err && (err.name === "NotAllowedError" || err.name === "SecurityError");
      toast("Can't record a voice note", denied ? "allow this page to use the microphone" : (err && err.message) || "", "error");
      return;
    }
    voiceBtn.disabled = !on;
    recBar.replaceChildren(
      h("button", { type: "button", id: "voice-cancel", class: "icon-btn", "aria-label": "Cancel the voice note", title: "Cancel", on: { click: () => stopVoice(false) } }, icon("trash")),
      h("span", { class: "rec-dot", "aria-hidden": "true" }), time,
      h("span", { class: "rec-label", text: "Recording…" }),
      h("button", { type: "button", id: "voice-send", class: "send-btn", "aria-label": "Send the voice note", title: "Send the voice note", on: { click: () => stopVoice(true) } }, icon("send")));
    form.hidden = true;
    stripBox.hidden = true;
    recBar.hidden = false;
    recBar.querySelector("#voice-send").focus();
  }

  async function stopVoice(send) {
    const r = rec;
    if (!r) return;
    rec = null;
    recBar.hidden = true;
    recBar.replaceChildren();
    form.hidden = false;
    stripBox.hidden = !staged.length;
    if (!send) { r.cancel(); ta.focus(); return; }
    const { file, durationMs } = await r.stop();
    ta.focus();
    if (!file.size) { toast("The voice note is empty", "check your microphone", "error"); return; }
    t.sendFile(file, { durationMs });
  }

  return {
    el,
    stage,
    reply,
    edit,
    /** changed tells the composer of a message's new form (edited or
     * deleted elsewhere): a bar about it follows, or goes. */
    changed(m) {
      if (editing && editing.m.id === m.id) {
        if (!actions.canEdit(m)) stopEdit(false);
        else editing.m = m;
      }
      if (replying && replying.id === m.id) {
        if (m.deleted) stopReply(false);
        else reply(m, false);
      }
    },
    enabled: () => on,
    /** setEnabled turns writing on or off; off, why says so above it. */
    setEnabled(yes, why = "You can't write in this conversation right now.") {
      on = yes;
      ta.disabled = !yes;
      sendBtn.disabled = !yes;
      voiceBtn.disabled = !yes;
      attachBtn.disabled = !yes;
      picker.disabled = !yes;
      hint.hidden = yes;
      hint.textContent = yes ? "" : why;
      if (!yes) { clearStaged(); stopVoice(false); stopReply(false); stopEdit(false); if (typing) typing.stop(); }
    },
    destroy() { stopVoice(false); clearStaged(); if (typing) typing.stop(); },
  };
}

const TYPING_EVERY = 2000; // at most one "typing" each 2 s while keys are pressed (the node sends one each 3 s)
const TYPING_IDLE = 5000; // no key for this long: stopped

/** typingSignals tells the node that the person is typing to the contact
 * peer (POST /conversations/{peer}/typing), when typing indicators are on:
 * input(text) on each change of the box, stop() when the message goes or
 * the chat closes. "Stopped" follows a "typing" only, after the message
 * is sent, the box emptied, or five seconds without a key. */
function typingSignals(peer) {
  let told = 0; // when "typing" last went; 0: stopped
  let idle = 0;
  const post = (on) => api.post(`/conversations/${api.seg(peer)}/typing`, { typing: on })
    .catch((err) => console.warn("typing", err.message));
  function stop() {
    clearTimeout(idle);
    if (!told) return;
    told = 0;
    post(false);
  }
  function input(text) {
    if (!text.trim()) { stop(); return; }
    if (!store.state.typingOn) return;
    clearTimeout(idle);
    idle = setTimeout(stop, TYPING_IDLE);
    if (Date.now() - told < TYPING_EVERY) return;
    told = Date.now();
    post(true);
  }
  return { input, stop };
}
