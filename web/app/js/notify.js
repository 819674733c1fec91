// notify.js: what reaches a person who is not looking at the tab: the
// unread count in the tab's title, desktop notifications (permission asked
// from a click, never on load) and short sounds made with WebAudio (no
// audio files): a chime for a message, a ringtone for a call.

import * as store from "./store.js";
import { go, path } from "./nav.js";
import { previewText, isTimerChange } from "./ui.js";

let audio = null;

function ctx() {
  if (!audio) {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return null;
    audio = new AC();
  }
  if (audio.state === "suspended") audio.resume().catch(() => {});
  return audio;
}

// Browsers start audio suspended until the page is used: resume on the
// first gesture so that later sounds play.
for (const ev of ["pointerdown", "keydown"]) {
  window.addEventListener(ev, () => { if (audio) audio.resume().catch(() => {}); }, { capture: true, passive: true });
}

function tone(ac, freq, at, len, gain = 0.12) {
  const o = ac.createOscillator();
  const g = ac.createGain();
  o.type = "sine";
  o.frequency.value = freq;
  g.gain.setValueAtTime(0, at);
  g.gain.linearRampToValueAtTime(gain, at + 0.02);
  g.gain.exponentialRampToValueAtTime(0.0001, at + len);
  o.connect(g).connect(ac.destination);
  o.start(at);
  o.stop(at + len + 0.05);
}

/** chime plays the short two-note sound of a new message. */
export function chime() {
  const ac = ctx();
  if (!ac) return;
  const t = ac.currentTime + 0.01;
  tone(ac, 880, t, 0.18);
  tone(ac, 1318.5, t + 0.12, 0.3);
}

/** ring starts a ringtone (two tones, repeated) and returns its stop. */
export function ring() {
  const ac = ctx();
  if (!ac) return () => {};
  const burst = () => {
    const t = ac.currentTime + 0.01;
    for (let i = 0; i < 2; i++) {
      tone(ac, 440, t + i * 0.5, 0.4, 0.15);
      tone(ac, 480, t + i * 0.5, 0.4, 0.15);
    }
  };
  burst();
  const timer = setInterval(burst, 3000);
  return () => clearInterval(timer);
}

/** permission is the desktop notification permission: default, granted,
 * denied or unsupported. */
export function permission() {
  return "Notification" in window ? Notification.permission : "unsupported";
}

/** ask asks for notification permission; call it from a click. */
export async function ask() {
  if (!("Notification" in window)) return "unsupported";
  return Notification.requestPermission();
}

/** show puts up a desktop notification when the tab is hidden. */
export function show(title, body, tag, onclick) {
  if (!document.hidden || permission() !== "granted") return null;
  try {
    const n = new Notification(title, { body, tag, silent: true });
    n.onclick = () => { window.focus(); if (onclick) onclick(); n.close(); };
    return n;
  } catch { return null; }
}

function updateTitle() {
  const n = store.unread();
  document.title = n > 0 ? `(${n}) callsign` : "callsign";
}

export function init() {
  store.on("conversations", updateTitle);
  store.on("requests", updateTitle);
  store.on("contacts", updateTitle);
  store.on("groups", updateTitle);
  store.on("message", (m) => {
    if (m.direction !== "in" || !document.hidden) return;
    if (store.isGroup(m.peer)) {
      // A group's message: the group's name, then who wrote what.
      const g = store.groupOf(m.peer);
      if (g && g.status !== "joined") return;
      const text = `${store.senderName(m.peer, m.from, m.from_name)}: ${previewText(m)}`;
      show(g ? g.name : "Group", text.length > 140 ? text.slice(0, 140) + "…" : text, "msg-" + m.peer, () => go(path("chats", m.peer)));
      chime();
      return;
    }
    const c = store.contactOf(m.peer);
    if (!c || c.blocked) return; // requests notify through their own event
    if (isTimerChange(m)) return; // a line in the conversation, not news
    const text = previewText(m);
    show(store.nameOf(m.peer), text.length > 140 ? text.slice(0, 140) + "…" : text, "msg-" + m.peer, () => go(path("chats", m.peer)));
    chime();
  });
  store.on("group-invite", (g) => {
    if (!document.hidden) return;
    // A stranger's invitation waits in the requests.
    show(g.name, g.invited_by_name ? `${g.invited_by_name} invited you to the group` : "You're invited to join the group", "group-" + g.id,
      () => go(path(store.strangerInvite(g) ? "requests" : "chats", g.id)));
    chime();
  });
  store.on("request", (m) => {
    if (!document.hidden) return;
    show("New message request", store.nameOf(m.peer) + " wants to message you", "req-" + m.peer, () => go(path("requests", m.peer)));
    chime();
  });
  updateTitle();
}
