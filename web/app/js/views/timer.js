// views/timer.js: disappearing messages, for chat.js and groups.js. The conversation's header has a timer button ("Disappearing
// messages") that opens a small menu of timers; the one on is checked,
// and choosing one sets it for both sides:
//
//   POST /conversations/{peer}/timer {seconds}   (0 turns it off)
//
// which answers the message that changed it (text "", timer_set the new
// timer); the other side and this account's other tabs get it as a
// "message" event. While a timer is on, the header shows it as a badge,
// and each message that will disappear carries a timer mark beside its
// time; the node deletes it on both sides when its expires_at comes, and
// the "message-deleted" event takes its bubble away.
//
// In a group the same request sets the group's timer, for its admins only
// (anyone else gets 403); the answer is not one of the group's messages,
// and the change reaches the members as a "group" event (Group.timer), so
// groups.js draws the header from the group.

import * as api from "../api.js";
import { h, icon, srOnly, timerWords, showError } from "../ui.js";

/** CHOICES are the timers the menu offers, in seconds (0 is off). */
export const CHOICES = [0, 30, 300, 3600, 86400, 604800];

/** setTimer sets the timer of the conversation with peer; it resolves to
 * the message that changed it. */
export const setTimer = (peer, seconds) => api.post(`/conversations/${api.seg(peer)}/timer`, { seconds });

/** badge is the header's mark of a timer that is on: the timer icon and
 * its length ("1 day"); null when off. */
export function badge(seconds) {
  if (!seconds) return null;
  return h("span", { id: "timer-badge", class: "timer-badge", title: `Disappearing messages: ${timerWords(seconds)}` },
    icon("timer"), srOnly("Disappearing messages: "), h("span", { text: timerWords(seconds) }));
}

/** expiryMark is the mark beside the time of a message that will
 * disappear (m.expires_at), null for one that won't. */
export function expiryMark(m) {
  if (!m.expires_at) return null;
  const at = new Date(m.expires_at);
  const when = isNaN(at) ? "" : at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  return h("span", { class: "msg-expires", dataset: { expires: m.expires_at }, title: when ? `Disappears ${when}` : "Disappearing message" }, icon("timer"), srOnly("Disappearing message. "));
}

/** control is the header's timer button, its menu behind it. current()
 * says the timer on now; chosen(m) takes the message that changed it
 * (the node's answer); note is the menu's line over the choices. It returns {el, update(), setEnabled(yes), destroy()};
 * update() marks the button after current() changed. */
export function control(peer, { current, chosen, note = "New messages disappear from both sides after:" }) {
  const btn = h("button", {
    type: "button", id: "timer-button", class: "icon-btn timer-btn", "aria-label": "Disappearing messages", title: "Disappearing messages",
    "aria-haspopup": "menu", "aria-expanded": "false", on: { click: () => (menu ? close(true) : open()) },
  }, icon("timer"));
  let menu = null; // the open menu: {el, close}
  let busy = false;

  function update() {
    const s = current();
    btn.classList.toggle("on", s > 0);
    btn.title = s > 0 ? `Disappearing messages: ${timerWords(s)}` : "Disappearing messages: off";
    if (menu) {
      for (const b of menu.el.querySelectorAll("[role=menuitemradio]")) b.setAttribute("aria-checked", String(Number(b.dataset.seconds) === s));
    }
  }

  function open() {
    const s = current();
    const items = CHOICES.map((n) => h("button", {
      type: "button", class: "menu-item timer-choice", role: "menuitemradio", "aria-checked": String(n === s), dataset: { seconds: String(n) },
      on: { click: () => choose(n) },
    }, icon("check", "choice-check"), h("span", { text: n ? timerWords(n) : "Off" })));
    const el = h("div", { class: "msg-menu timer-menu", role: "menu", "aria-label": "Disappearing messages", tabindex: "-1" },
      h("p", { class: "timer-menu-title", "aria-hidden": "true", text: "Disappearing messages" }),
      h("p", { class: "timer-menu-note", text: note }),
      items);
    document.body.append(el);
    btn.setAttribute("aria-expanded", "true");
    place(el);

    const onKey = (e) => {
      const bs = items;
      const i = bs.indexOf(document.activeElement);
      let j = -1;
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); close(true); return; }
      if (e.key === "ArrowDown") j = i < 0 ? 0 : (i + 1) % bs.length;
      else if (e.key === "ArrowUp") j = i <= 0 ? bs.length - 1 : i - 1;
      else if (e.key === "Home") j = 0;
      else if (e.key === "End") j = bs.length - 1;
      else if (e.key === "Tab") { close(true); return; }
      if (j >= 0) { e.preventDefault(); bs[j].focus(); }
    };
    const onDown = (e) => { if (!el.contains(e.target) && !btn.contains(e.target)) close(false); };
    const onResize = () => close(false);
    el.addEventListener("keydown", onKey);
    document.addEventListener("mousedown", onDown, true);
    window.addEventListener("resize", onResize);
    menu = {
      el,
      close: () => {
        el.remove();
        document.removeEventListener("mousedown", onDown, true);
        window.removeEventListener("resize", onResize);
      },
    };
    (items.find((b) => b.getAttribute("aria-checked") === "true") || items[0]).focus({ preventScroll: true });
  }

  function close(refocus) {
    if (!menu) return;
    menu.close();
    menu = null;
    btn.setAttribute("aria-expanded", "false");
    if (refocus && btn.isConnected) btn.focus();
  }

  // place puts the menu under the button, its right edge under the
  // button's, inside the window.
  function place(el) {
    const a = btn.getBoundingClientRect();
    const vw = document.documentElement.clientWidth;
    el.style.left = Math.max(8, Math.min(a.right - el.offsetWidth, vw - el.offsetWidth - 8)) + "px";
    el.style.top = a.bottom + 4 + "px";
  }

  async function choose(n) {
    close(true);
    if (busy || n === current()) return;
    busy = true;
    try {
      chosen(await setTimer(peer, n));
    } catch (err) {
      showError(err, "Could not change disappearing messages");
    } finally {
      busy = false;
      update();
    }
  }

  update();
  return {
    el: btn,
    update,
    /** setEnabled turns the control off while writing is off. */
    setEnabled(yes) {
      btn.disabled = !yes;
      if (!yes) close(false);
    },
    destroy() { close(false); },
  };
}
