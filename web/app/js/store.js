// store.js: the app's one state store. It loads lists from the API, keeps
// them current from the event WebSocket (/api/v1/events), and tells the
// views what changed by topic: me, handles, conversations, requests,
// contacts, calls, connection, revoked, and every event type as it arrives
// (message, message-updated, message-deleted, state, file, request,
// key-change, incoming-call, call-state, claim-progress, handle,
// device-revoked, synced, group, and group-invite for a new invitation). A conversation's `timer` (its
// disappearing-message timer, seconds, 0 off) follows the messages that
// change it.
//
// Typing indicators: `typingOn` is the person's setting (GET
// /settings/typing, read each time the event stream opens, changed with
// setTypingOn; the topic "typingOn"), and `typers` the contacts typing to
// them now, from "typing" events; the topic "typers" names the account
// that started or stopped.
//
// Groups: a group's messages are a conversation whose peer is the group's
// id (32 hex digits) and whose `group` is the group (api.Group). The
// groups (GET /groups) are kept too, and every one of them is in the chat
// list: an invitation has no messages yet, so the store makes it a
// conversation of its own. But an invitation from a stranger (`request`)
// waits in the requests, as a stranger's first message does (GET
// /requests lists it), until it is joined (then it is a chat) or declined
// (then it is gone). "group" events bring a group's new name, members or
// status; the topic "groups" tells the views.

import * as api from "./api.js";
import { shortAccount } from "./ui.js";

export const state = {
  me: null, // api.ID
  handles: [], // api.Handle[]
  conversations: [], // api.Conversation[], most recent first
  requests: [], // api.Conversation[] of message requests, and of strangers' group invitations
  contacts: [], // api.Contact[]
  calls: [], // api.Call[]: live calls, then the log, newest first
  groups: [], // api.Group[]: groups this account is in, invited to or was in
  connected: false, // the event stream is open
  viewing: null, // the account whose chat is on screen (and read), if any
  callStates: new Map(), // call id → the latest call from incoming-call and call-state events
  early: false, // the first screen came from early.js's request
  typingOn: null, // typing indicators are on (GET /settings/typing); null until read
  typers: new Map(), // account → its expiry timer: the contacts typing to this person now
  // Another device of the account removed this one (GET /status says
  // device_revoked, or a device-revoked event came): it sends nothing
  // more. It stays so: a removed device is never added back.
  revoked: false,
};

const listeners = new Map();

/** on calls fn(data) whenever topic changes; returns the unsubscribe. */
export function on(topic, fn) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(fn);
  return () => listeners.get(topic).delete(fn);
}

export function emit(topic, data) {
  for (const fn of [...(listeners.get(topic) || [])]) {
    try { fn(data); } catch (err) { console.error("listener of", topic, err); }
  }
}

const loaders = {
  me: async () => { state.me = await api.get("/id"); },
  handles: async () => { state.handles = await api.get("/handles"); },
  conversations: async () => { state.conversations = withGroups(await api.get("/conversations")); },
  requests: async () => { state.requests = await api.get("/requests"); },
  contacts: async () => { state.contacts = await api.get("/contacts"); },
  calls: async () => { state.calls = await api.get("/calls?limit=100"); },
  groups: async () => {
    state.groups = (await api.get("/groups")) || [];
    state.conversations = withGroups(state.conversations);
    emit("conversations", state.conversations);
    for (const g of state.groups) learnNames(g);
  },
  typingOn: async () => { typingSetting((await api.get("/settings/typing")).on); },
  // Asked each time the event stream opens: the event may have been missed.
  revoked: async () => { if ((await api.get("/status")).device_revoked) state.revoked = true; },
};

/** load fetches topic from the API and tells its listeners. */
export async function load(topic) {
  await loaders[topic]();
  emit(topic, state[topic]);
}

/** loadAll loads the first screen's topics in one request (GET
 * /api/v1/app), taking the answer early.js asked for
 * while the modules loaded when there is one (state.early says it did),
 * and tells every topic's listeners. */
export async function loadAll() {
  let all = null;
  const early = window.callsignBoot;
  window.callsignBoot = null;
  if (early) {
    try {
      all = await early;
    } catch { /* asked again below */ }
  }
  state.early = !!all;
  if (!all) all = await api.get("/app");
  state.me = all.id;
  state.handles = all.handles || [];
  state.groups = all.groups || [];
  state.conversations = withGroups(all.conversations || []);
  state.requests = all.requests || [];
  state.contacts = all.contacts || [];
  state.calls = all.calls || [];
  for (const topic of ["me", "handles", "conversations", "requests", "contacts", "calls", "groups"]) emit(topic, state[topic]);
}

/** isGroup reports whether id, a conversation's peer, is a group's id
 * (32 hex digits; an account id starts with csa1). */
export const isGroup = (id) => /^[0-9a-f]{32}$/.test(id || "");

/** groupOf is the group whose id is id, or null. */
export function groupOf(id) {
  const conv = state.conversations.find((c) => c.peer === id);
  if (conv && conv.group) return conv.group;
  return state.groups.find((g) => g.id === id) || null;
}

/** senderName names account, a member of the group id, for its
 * messages: hint (a message's from_name, how the node calls them) when
 * given, else the member's name or handle in the group, else as nameOf. */
export function senderName(id, account, hint = "") {
  if (hint) return hint;
  const g = groupOf(id);
  const mb = g && (g.members || []).find((x) => x.account === account);
  if (mb && mb.name) return mb.name;
  const c = contactOf(account);
  if (c && c.petname) return c.petname;
  if (mb && mb.handle) return mb.handle.includes("~") || mb.handle.startsWith("@") ? mb.handle : "@" + mb.handle;
  return shortAccount(account);
}

const ZERO = (iso) => !iso || new Date(iso).getFullYear() < 2000;

// groupConv is the chat list's (or the requests') conversation of group
// g, which has no messages here (an invitation).
const groupConv = (g) => ({ peer: g.id, peer_name: g.name, last_at: ZERO(g.last_at) ? "" : g.last_at, unread: g.unread || 0, request: strangerInvite(g), group: g });

/** strangerInvite reports whether group g is an invitation from someone
 * who isn't a contact, not answered yet: it waits in the requests. */
export const strangerInvite = (g) => !!(g && g.status === "invited" && g.request);

// withGroups adds to convs (the node's list) the groups it lacks but
// strangers' invitations, and the group of each group conversation that
// came without one.
function withGroups(convs) {
  for (const g of state.groups) {
    const conv = convs.find((c) => c.peer === g.id);
    if (!conv && !strangerInvite(g)) convs.push(groupConv(g));
    else if (conv && !conv.group) conv.group = g;
  }
  return convs;
}

/** listed reports whether the chat list shows conversation c: all but a
 * group left (or an invitation declined) with nothing in it to read, and
 * a stranger's invitation (it is among the requests). */
export const listed = (c) => !(c.group && ((c.group.status === "left" && !c.last) || strangerInvite(c.group)));

/** invited reports whether c is an invitation to a group, not answered yet. */
export const invited = (c) => !!(c.group && c.group.status === "invited");

// applyGroup takes a group's new state (a "group" event, or the answer of
// this tab's own change) into the groups and the chat list, or the
// requests for a stranger's invitation; one joined or declined leaves the
// requests.
function applyGroup(g) {
  const i = state.groups.findIndex((x) => x.id === g.id);
  if (i >= 0) state.groups[i] = g;
  else state.groups.push(g);
  const ci = state.conversations.findIndex((c) => c.peer === g.id);
  const ri = state.requests.findIndex((r) => r.peer === g.id);
  if (strangerInvite(g)) {
    if (ci >= 0) state.conversations.splice(ci, 1);
    if (ri >= 0) Object.assign(state.requests[ri], { group: g, peer_name: g.name });
    else state.requests.unshift(groupConv(g));
  } else {
    if (ri >= 0) state.requests.splice(ri, 1);
    if (ci >= 0) Object.assign(state.conversations[ci], { group: g, peer_name: g.name });
    else state.conversations.unshift(groupConv(g));
  }
  emit("groups", state.groups);
  emit("conversations", state.conversations);
  if (ri >= 0 || strangerInvite(g)) emit("requests", state.requests);
}

// The node looks up the handles of members who aren't contacts when asked
// for the group (GET /groups/{id}), and names them from then on; until
// then, it names them nowhere (not in from_name, not in the groups list).
const asked = new Set(); // "group account" pairs asked for

/** learnNames asks the node for group g when a member, or who invited
 * you, has no name yet (once for each), and takes the names it answers
 * into the group; only the names: an event may have brought a newer
 * group meanwhile. */
export function learnNames(g) {
  const unnamed = (g.members || []).filter((mb) => !mb.you && !mb.name && !contactOf(mb.account)).map((mb) => mb.account);
  if (g.invited_by && !g.invited_by_name) unnamed.push(g.invited_by);
  const fresh = unnamed.filter((a) => !asked.has(g.id + " " + a));
  if (!fresh.length) return;
  for (const a of fresh) asked.add(g.id + " " + a);
  api.get(`/groups/${api.seg(g.id)}`).then((named) => {
    const cur = groupOf(g.id);
    if (!cur) return;
    const by = new Map((named.members || []).map((mb) => [mb.account, mb]));
    let changed = !cur.invited_by_name && !!named.invited_by_name && cur.invited_by === named.invited_by;
    const members = (cur.members || []).map((mb) => {
      const n = by.get(mb.account);
      if (!n || ((mb.name || !n.name) && (mb.handle || !n.handle))) return mb;
      changed = true;
      return { ...mb, name: mb.name || n.name, handle: mb.handle || n.handle };
    });
    if (!changed) return;
    applyGroup({ ...cur, members, invited_by_name: cur.invited_by_name || (cur.invited_by === named.invited_by ? named.invited_by_name : "") });
    refresh("conversations", 0); // the node names the senders of the previews now
  }).catch((err) => console.warn("group names", err.message));
}

/** noteGroup tells the store of a group this tab changed (the node's
 * answer to create, invite, join, leave, remove, admin or rename). */
export function noteGroup(g) { if (g && g.id) applyGroup(g); }

const timers = {};

/** refresh reloads topic soon, once for a burst of calls; errors are
 * logged (the next event or reconnect tries again). */
export function refresh(topic, ms = 150) {
  clearTimeout(timers[topic]);
  timers[topic] = setTimeout(() => load(topic).catch((err) => console.warn("refresh", topic, err.message)), ms);
}

export const contactOf = (account) => state.contacts.find((c) => c.account === account) || null;

/** nameOf is how the app names an account: the pet name you gave it, else
 * the handle the node shows for it, else a short account id. */
export function nameOf(account, hint = "") {
  const c = contactOf(account);
  if (c && c.petname) return c.petname;
  const conv = state.conversations.find((x) => x.peer === account) || state.requests.find((x) => x.peer === account);
  if (conv && conv.peer_name) return conv.peer_name;
  return hint || shortAccount(account);
}

/** globalHandles are the handles claimed on the network (not name~suffix). */
export const globalHandles = () => state.handles.filter((x) => !x.self_certifying);

/** chatsUnread counts the unread messages of the chat list, an
 * invitation to a group as one. */
export function chatsUnread() {
  return state.conversations.reduce((n, c) => n + (!listed(c) ? 0 : invited(c) ? Math.max(1, c.unread || 0) : c.unread || 0), 0);
}

/** unread counts unread messages plus waiting requests, for the title. */
export function unread() {
  return chatsUnread() + visibleRequests().length;
}

/** visibleRequests leaves out requests from accounts you have blocked:
 * a first message by its sender, an invitation to a group by who sent it.
 * An invitation is taken as the groups say it is now (a list read just
 * before it was answered may still have it). */
export function visibleRequests() {
  return state.requests.filter((r) => {
    const g = r.group && (state.groups.find((x) => x.id === r.peer) || r.group);
    if (g && !strangerInvite(g)) return false;
    const c = contactOf(g ? g.invited_by : r.peer);
    return !(c && c.blocked);
  });
}

const RANK = { queued: 0, sent: 1, delivered: 2, read: 3 };

/** later reports whether state b may replace state a (states only move
 * forward; failed replaces queued and sent). */
export function later(a, b) {
  if (a === b) return false;
  if (b === "failed") return !(a in RANK) || RANK[a] < RANK.delivered;
  if (a === "failed") return b === "delivered" || b === "read";
  return !(a in RANK) || !(b in RANK) || RANK[b] > RANK[a];
}

function applyMessage(m) {
  const conv = state.conversations.find((c) => c.peer === m.peer);
  if (!conv) {
    refresh("conversations");
    refresh("requests");
    return;
  }
  const newer = !conv.last || new Date(m.sent_at) >= new Date(conv.last.sent_at);
  // A copy: the open chat holds m itself, and a state change applied
  // here must not reach its copy before its own listener sees the event.
  if (newer) {
    conv.last = { ...m };
    conv.last_at = m.sent_at;
    if (typeof m.timer_set === "number") conv.timer = m.timer_set;
  }
  if (m.direction === "in" && !(state.viewing === m.peer && document.visibilityState === "visible")) conv.unread = (conv.unread || 0) + 1;
  state.conversations.sort((a, b) => (Date.parse(b.last_at) || 0) - (Date.parse(a.last_at) || 0));
  emit("conversations", state.conversations);
  refresh("conversations", 1500); // reconcile unread counts with the node
}

/** noteSent updates the chat list with a message this tab just sent (the
 * node has no event for those). */
export function noteSent(m) { applyMessage(m); }

function applyState(s) {
  // Read on another device of this account: the unread count is the node's.
  const unread = state.conversations.find((c) => c.peer === s.peer && c.unread);
  if (s.state === "read" && unread) refresh("conversations", 300);
  for (const list of [state.conversations, state.requests]) {
    const conv = list.find((c) => c.last && c.last.id === s.id);
    if (conv && later(conv.last.state, s.state)) {
      conv.last = { ...conv.last, state: s.state };
      emit(list === state.conversations ? "conversations" : "requests", list);
    }
  }
}

// applyUpdate shows a message's new form ("message-updated": a reaction,
// an edit, a deletion) in the chat lists' previews, when it is their last.
function applyUpdate(m) {
  for (const list of [state.conversations, state.requests]) {
    const conv = list.find((c) => c.last && c.last.id === m.id);
    if (!conv) continue;
    const st = later(m.state, conv.last.state) ? conv.last.state : m.state;
    conv.last = { ...m, state: st };
    emit(list === state.conversations ? "conversations" : "requests", list);
  }
}

// applyDeleted follows a message that expired ("message-deleted"): the
// chat list's preview and unread count are the node's to say again.
function applyDeleted(d) {
  const last = (list) => list.some((c) => c.peer === d.peer && c.last && c.last.id === d.id);
  refresh("conversations", last(state.conversations) ? 0 : 300);
  if (last(state.requests)) refresh("requests", 0);
}

// A contact's node says "typing" at most every 3 s while they type, so
// one not heard from for this long has stopped (its "stopped" lost, or
// their tab closed).
const TYPING_FOR = 8000;

// setTyping starts or stops the indicator of account peer; the topic
// "typers" hears of a start or a stop, not of one that goes on.
function setTyping(peer, on) {
  const was = state.typers.has(peer);
  clearTimeout(state.typers.get(peer));
  if (on) state.typers.set(peer, setTimeout(() => setTyping(peer, false), TYPING_FOR));
  else state.typers.delete(peer);
  if (on !== was) emit("typers", peer);
}

/** isTyping reports whether the contact peer is typing to this person now. */
export const isTyping = (peer) => state.typers.has(peer);

// typingSetting takes the setting as the node said it; off, no indicator
// shows (the node passes on no more "typing" events).
function typingSetting(on) {
  state.typingOn = !!on;
  if (!on) for (const p of [...state.typers.keys()]) setTyping(p, false);
}

/** setTypingOn turns typing indicators on or off (POST /settings/typing)
 * and tells the topic "typingOn". */
export async function setTypingOn(on) {
  typingSetting((await api.post("/settings/typing", { on })).on);
  emit("typingOn", state.typingOn);
}

/** noteUpdated updates the chat lists with a message this tab changed
 * (the answer of a react, edit or delete), as its event would. */
export function noteUpdated(m) { applyUpdate(m); }

function onEvent(ev) {
  const d = ev.data;
  if (ev.type === "message") {
    // The open conversation first; the chat list, the title and the
    // notification in a task of their own, so the message is on screen
    // before the list is redrawn. Their message ends their typing.
    if (d.direction === "in" && state.typers.has(d.peer)) setTyping(d.peer, false);
    emit(ev.type, d);
    setTimeout(() => applyMessage(d), 0);
    return;
  }
  switch (ev.type) {
    case "state": applyState(d); break;
    case "message-updated": applyUpdate(d); break;
    case "message-deleted": applyDeleted(d); break;
    case "request": refresh("requests"); refresh("conversations"); break;
    case "key-change": refresh("contacts", 0); break;
    case "incoming-call": state.callStates.set(d.id, d); refresh("calls", 500); break;
    case "call-state": state.callStates.set(d.id, d); if (d.state === "ended") refresh("calls", 300); break;
    case "handle": refresh("handles", 0); refresh("me", 0); break;
    case "group": {
      const was = state.groups.find((g) => g.id === d.id);
      if (was && was.status === "joined" && d.status === "invited") {
        // No one is invited to a group they are in: this is an older
        // state of it, sent late (the node's lookup of members' names
        // tells what it read before the lookup). The node says what is.
        api.get(`/groups/${api.seg(d.id)}`).then((g) => {
          applyGroup(g);
          if (g.status === "invited") emit("group-invite", g);
        }, (err) => console.warn("group", err.message));
        return;
      }
      // A new invitation is news of its own (notify.js).
      applyGroup(d);
      learnNames(d);
      if (d.status === "invited" && !(was && was.status === "invited")) emit("group-invite", d);
      refresh("conversations", 500);
      // A stranger's invitation is a request: it comes, or goes once
      // answered (here or on another device).
      if (d.status === "invited" || (was && was.status === "invited")) refresh("requests", 500);
      break;
    }
    case "typing": {
      // Not from someone blocked (the node passes theirs on too).
      const c = contactOf(d.peer);
      if (d.peer && !isGroup(d.peer)) setTyping(d.peer, !!d.typing && !(c && c.blocked));
      break;
    }
    case "device-revoked": state.revoked = true; emit("revoked", true); break;
    // Another device of this account changed what they share.
    case "synced":
      if (d.contacts) { refresh("contacts", 0); refresh("conversations", 300); refresh("requests", 300); }
      if (d.calls) refresh("calls", 300);
      break;
  }
  emit(ev.type, d);
}

let ws = null;
let backoff = 500;
let stopped = false;

/** connect opens the event stream and keeps it open, reconnecting with
 * backoff. Each time it opens, the first time too, everything is reloaded
 * (listeners of "resync" reload their own): events may have been missed
 * meanwhile, and the first screen's data was read before the stream
 * opened (early.js asks for it as the page is parsed), so a message that
 * came in between would be in neither. */
export function connect() {
  stopped = false;
  const sock = new WebSocket(api.eventsURL());
  ws = sock;
  sock.onopen = () => {
    backoff = 500;
    state.connected = true;
    emit("connection", true);
    resync();
  };
  sock.onmessage = (e) => {
    let ev;
    try { ev = JSON.parse(e.data); } catch { return; }
    onEvent(ev);
  };
  sock.onclose = () => {
    if (ws !== sock) return;
    const was = state.connected;
    state.connected = false;
    if (was) emit("connection", false);
    if (stopped) return;
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 10000);
  };
}

export function disconnect() {
  stopped = true;
  if (ws) ws.close();
}

function resync() {
  for (const t of Object.keys(loaders)) refresh(t, 0);
  emit("resync");
}
