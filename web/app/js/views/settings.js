// views/settings.js: your handles and account, notifications and typing
// indicators, who may call you and how, your devices and linking a new one, backups, and the
// node's status.

import * as api from "../api.js";
import * as store from "../store.js";
import * as notify from "../notify.js";
import { path } from "../nav.js";
import { h, icon, avatar, showError, toast, confirm, qrImage, copyButton, since, shortAccount, clock } from "../ui.js";
import { claimForm, restoreForm } from "./firstrun.js";

const SECTIONS = [
  ["profile", "Profile and handles", "at"],
  ["notifications", "Notifications", "bell"],
  ["calls", "Call settings", "phone"],
  ["devices", "Devices", "devices"],
  ["backup", "Back up your account", "lock"],
  ["node", "Your node", "server"],
];

export function list(el) {
  let selected = null;
  const ul = h("ul", { role: "list", class: "rows settings-nav", "aria-label": "Settings" });
  el.append(h("header", { class: "pane-header" }, h("h1", { text: "Settings" })), h("div", { class: "pane-body" }, ul));
  function render() {
    ul.replaceChildren(...SECTIONS.map(([id, label, ic]) => h("li", null,
      h("a", { class: "row-link", href: path("settings", id), dataset: { peer: id }, "aria-current": id === selected ? "page" : null },
        h("span", { class: "nav-icon" }, icon(ic)), h("span", { class: "row-main" }, h("span", { class: "row-name", text: label }))))));
  }
  render();
  return { select(p) { selected = p; render(); } };
}

export function detail(el, section) {
  const known = SECTIONS.find(([id]) => id === section);
  const title = known ? known[1] : "Settings";
  const body = h("div", { class: "page-body" });
  el.append(h("section", { class: "page", "aria-labelledby": "settings-title" },
    h("header", { class: "page-header" },
      h("a", { class: "icon-btn back", href: "/settings", "aria-label": "Back to settings", title: "Back to settings" }, icon("back")),
      h("h1", { id: "settings-title", text: title })),
    body));
  switch (section) {
    case "profile": return profile(body);
    case "notifications": return notifications(body);
    case "calls": return calls(body);
    case "devices": return devicesPage(body);
    case "backup": return backup(body);
    case "node": return node(body);
  }
  body.append(h("p", { class: "muted", text: "No such settings page." }));
  return {};
}

function profile(body) {
  function render() {
    const me = store.state.me;
    if (!me) return;
    const global = store.globalHandles();
    const primary = global.length ? "@" + global[0].name : me.handle;
    body.replaceChildren(
      h("div", { class: "card profile-card" },
        avatar(primary, me.account, "xl"),
        h("div", { class: "profile-text" },
          h("h2", { class: "profile-name", text: primary }),
          h("p", { class: "muted mono", text: me.handle }),
          h("dl", { class: "facts" },
            h("dt", { text: "Account id" }), h("dd", { class: "mono wrap" }, me.account, copyButton(me.account, "Copy your account id")),
            h("dt", { text: "This device" }), h("dd", { class: "mono wrap", text: me.peer }))),
        h("figure", { class: "qr-figure" }, qrImage(primary, `QR code of your handle ${primary}`), h("figcaption", { text: "Scan to add me" }))),
      h("div", { class: "card" }, h("h2", { text: "Your handles" }),
        h("ul", { role: "list", class: "handles" }, store.state.handles.map((x) => h("li", null,
          h("span", { class: "mono", text: x.self_certifying ? x.name : "@" + x.name }),
          h("span", { class: "muted small", text: x.self_certifying ? "self-certifying: only your key can hold it" : "claimed " + new Date(x.claimed_at).toLocaleDateString() }),
          copyButton(x.self_certifying ? x.name : "@" + x.name, "Copy " + (x.self_certifying ? x.name : "@" + x.name))))),
        h("h3", { text: global.length ? "Claim another handle" : "Claim a short handle" }),
        claimForm({ onClaimed: (c) => toast(`You now hold @${c.name}`) }).el));
  }
  const offs = [store.on("handles", render), store.on("me", render)];
  render();
  return { destroy() { offs.forEach((f) => f()); } };
}

function notifications(body) {
  const typing = typingCard();
  function render() {
    const p = notify.permission();
    const words = {
      granted: "On: you'll get a notification for new messages and calls while this tab is in the background.",
      default: "Off: turn them on to hear about new messages and calls while this tab is in the background.",
      denied: "Blocked by the browser. To allow them, use the site settings next to the address bar.",
      unsupported: "This browser doesn't support desktop notifications.",
    }[p];
    body.replaceChildren(
      h("div", { class: "card" }, h("h2", { text: "Desktop notifications" }),
        h("p", { id: "notif-state", text: words }),
        p === "default" ? h("div", { class: "form-actions" }, h("button", {
          type: "button", class: "btn primary", text: "Turn on notifications", on: {
            click: async () => { await notify.ask(); render(); },
          },
        })) : null),
      h("div", { class: "card" }, h("h2", { text: "Sounds" }),
        h("p", { class: "muted", text: "A short chime for a message and a ringtone for a call, when this tab is in the background." }),
        h("div", { class: "form-actions" },
          h("button", { type: "button", class: "btn", text: "Play the message sound", on: { click: () => notify.chime() } }),
          h("button", { type: "button", class: "btn", text: "Play the ringtone", on: { click: () => { const stop = notify.ring(); setTimeout(stop, 2500); } } }))),
      h("div", { class: "card" }, h("h2", { text: "Tab title" }), h("p", { class: "muted", text: "The tab's title shows how many messages and requests are unread, like “(3) callsign”." })),
      typing.el);
  }
  render();
  return { destroy: typing.destroy };
}

// typingCard is the switch of typing indicators (GET and POST
// /settings/typing, through the store, which the chats read it from).
function typingCard() {
  const problem = h("p", { class: "error-text small", role: "alert", hidden: true });
  const sw = h("input", {
    type: "checkbox", role: "switch", id: "typing-switch", "aria-labelledby": "typing-label", "aria-describedby": "typing-desc", on: {
      change: async () => {
        const want = sw.checked;
        sw.disabled = true;
        problem.hidden = true;
        try { await store.setTypingOn(want); }
        catch (err) { showError(err, "Could not save"); }
        sw.disabled = false;
        show();
      },
    },
  });
  const el = h("div", { class: "card" }, h("h2", { text: "Privacy" }),
    h("label", { class: "check" }, sw,
      h("span", null, h("strong", { id: "typing-label", text: "Typing indicators" }),
        h("span", { class: "muted", id: "typing-desc", text: "Contacts who also turn this on see when you are typing, and you see when they are. Off: neither." }))),
    problem);
  // Unknown until the node says: off and not to be changed meanwhile.
  function show() {
    sw.checked = !!store.state.typingOn;
    if (store.state.typingOn === null) sw.disabled = true;
  }
  const off = store.on("typingOn", () => { sw.disabled = false; show(); });
  show();
  store.load("typingOn").catch((err) => {
    problem.textContent = "Can't read this setting: " + err.message;
    problem.hidden = false;
  });
  return { el, destroy: off };
}

const POLICIES = [
  ["everyone", "Everyone", "Anyone can ring you. Strangers' calls go through a relay, so they never learn your address."],
  ["contacts", "My contacts", "Only people in your contacts ring you."],
  ["following", "People I follow", "Only contacts you follow ring you."],
  ["verified", "Verified contacts", "Only contacts whose safety number you verified ring you."],
  ["nobody", "Nobody", "No call rings. Callers learn only that you can't take calls right now."],
];

function calls(body) {
  let s = null;
  async function change(ch, what) {
    try { s = await api.post("/settings/calls", ch); toast(what); render(); }
    catch (err) { showError(err, "Could not save"); render(); }
  }
  function render() {
    if (!s) { body.replaceChildren(h("p", { class: "muted", text: "Loading…" })); return; }
    const rules = Object.entries(s.rules || {});
    const rec = h("input", { id: "record-dir", value: s.record_dir || "", placeholder: "/home/me/calls", autocomplete: "off", class: "mono" });
    body.replaceChildren(
      h("fieldset", { class: "card" }, h("legend", { text: "Who can call me" }),
        POLICIES.map(([v, label, desc]) => h("label", { class: "radio" },
          h("input", { type: "radio", name: "policy", value: v, checked: s.policy === v, on: { change: () => change({ policy: v }, "Call setting saved") } }),
          h("span", null, h("strong", { text: label }), h("span", { class: "muted", text: desc }))))),
      h("div", { class: "card" }, h("h2", { text: "Privacy" }),
        h("label", { class: "check" },
          h("input", { type: "checkbox", checked: s.always_relay, on: { change: (e) => change({ always_relay: e.target.checked }, "Saved") } }),
          h("span", null, h("strong", { text: "Always use a relay" }), h("span", { class: "muted", text: "Every call goes through a community relay, so nobody you call learns your address. Costs a little latency." })))),
      h("div", { class: "card" }, h("h2", { text: "Answering machine" }),
        h("label", { class: "check" },
          h("input", { type: "checkbox", checked: s.autoanswer, on: { change: (e) => change({ autoanswer: e.target.checked }, "Saved") } }),
          h("span", null, h("strong", { text: "Answer calls automatically and record them" }), h("span", { class: "muted", text: "For a node nobody sits at: calls that may ring are answered and recorded on the node's disk." }))),
        h("form", {
          class: "inline-form", on: { submit: (e) => { e.preventDefault(); change({ record_dir: rec.value.trim() }, "Recording folder saved"); } },
        }, h("div", { class: "field" }, h("label", { for: "record-dir", text: "Recording folder on the node (absolute path)" }), rec),
        h("button", { type: "submit", class: "btn", text: "Save folder" }))),
      h("div", { class: "card" }, h("h2", { text: "Per-contact rules" }),
        rules.length ? h("ul", { role: "list", class: "rules" }, rules.map(([acct, rule]) => h("li", null,
          h("a", { href: path("contacts", acct), text: store.nameOf(acct) }),
          h("span", { class: "tag " + (rule === "allow" ? "ok" : "danger"), text: rule === "allow" ? "Always rings" : "Never rings" }),
          h("button", { type: "button", class: "btn small", text: "Remove rule", "aria-label": `Remove the rule for ${store.nameOf(acct)}`, on: { click: () => change({ rule_name: acct, rule: "default" }, "Rule removed") } }))))
          : h("p", { class: "muted", text: "None. Open a contact to let them always ring, or never." })));
  }
  const load = () => api.get("/settings/calls").then((x) => { s = x; render(); }, (err) => body.replaceChildren(h("p", { class: "error-text", text: err.message })));
  load();
  render();
  // Changed on another device of this account.
  const off = store.on("synced", (d) => { if (d && d.call_settings) load(); });
  return { destroy: off };
}

// The link states (GET /api/v1/devices/link) while a link is under way.
const LINK_ACTIVE = ["waiting", "connecting", "sas", "handover"];
// This tab's last link offer, {code, expires}: the code shows again when
// the person comes back to the page while it waits.
const LINK_KEY = "callsign.link";

// devicesPage lists the account's devices (GET /api/v1/devices) and links a
// new one (docs/DEVICES.md §1). This device offers a one-time code (POST
// /api/v1/devices/link) that the new device takes with `callsign up --link
// CODE`; the page follows the link (GET /api/v1/devices/link, once a
// second while it is under way), shows the six digits both devices show,
// and the person types the new device's digits to confirm (POST
// /api/v1/devices/link/confirm): other digits decline the link. Remove
// revokes another device of the account (POST /api/v1/devices/{id}/revoke,
// docs/DEVICES.md §4), once the person confirms.
function devicesPage(body) {
  const list = h("ul", { role: "list", class: "device-list", "aria-labelledby": "devices-title" });
  const listNote = h("p", { class: "muted", text: "Loading…" });
  const removeError = h("div", { class: "form-error", role: "alert", hidden: true });
  let devices = null; // the list last read
  const step = h("div", { class: "link-step" });
  let destroyed = false;
  let timer = 0; // the next poll
  let later = 0; // the device list's second reload after a link
  let ctrl = null; // the poll in flight
  let attempt = 0; // the link the page follows: answers about an older one are dropped
  let offer = null; // {code, expires} of the link this tab started
  let shown = ""; // the step on screen, redrawn only when it changes
  let declined = ""; // why the digits typed declined the link, in the node's words
  let countdown = null; // the waiting step's expiry text

  body.replaceChildren(
    h("section", { class: "card", "aria-labelledby": "devices-title" },
      h("h2", { id: "devices-title", text: "Your devices" }),
      h("p", { class: "muted", text: "Your account works on each of these at the same time: new messages reach all of them." }),
      listNote, list, removeError),
    h("section", { class: "card", "aria-labelledby": "link-title" },
      h("h2", { id: "link-title", text: "Link a new device" }),
      step));

  async function loadDevices() {
    try {
      const ds = await api.get("/devices");
      if (destroyed) return;
      listNote.hidden = true;
      devices = ds;
      drawDevices();
    } catch (err) {
      if (destroyed) return;
      listNote.className = "error-text";
      listNote.textContent = err.message;
      listNote.hidden = false;
    }
  }

  // A removed device removes none (the node refuses it): no Remove buttons.
  function drawDevices() {
    if (!devices) return;
    list.replaceChildren(...devices.map((d) => deviceRow(d, d.current || d.revoked || store.state.revoked ? null : remove)));
  }

  async function remove(d, btn) {
    const name = d.name || "Unnamed device";
    if (!(await confirm(`Remove ${name}?`, `${name} will get no new messages. Your contacts stop sending to it, and it is told it was removed. This can't be undone: to use it again, link it anew.`, "Remove", true))) return;
    if (destroyed) return;
    removeError.hidden = true;
    btn.disabled = true;
    btn.textContent = "Removing…";
    try {
      await api.post(`/devices/${api.seg(d.id)}/revoke`);
      if (destroyed) return;
      toast(`${name} was removed from your account`);
    } catch (err) {
      if (destroyed) return;
      btn.disabled = false;
      btn.textContent = "Remove";
      removeError.replaceChildren(h("strong", { text: `Could not remove ${name}: ${sentence(err.message)}` }), err.hint ? h("span", { text: sentence(err.hint) }) : null);
      removeError.hidden = false;
    }
    // Removed, or maybe only here (the node says so): the list says which.
    await loadDevices();
    const title = document.getElementById("devices-title");
    if (!destroyed && title && !body.contains(document.activeElement)) { title.tabIndex = -1; title.focus(); }
  }

  function stopPolling() {
    clearTimeout(timer);
    timer = 0;
    if (ctrl) ctrl.abort();
    ctrl = null;
  }

  function schedule(my) {
    clearTimeout(timer);
    timer = setTimeout(() => poll(my), 1000);
  }

  async function poll(my) {
    timer = 0;
    if (destroyed || my !== attempt) return;
    const c = ctrl = new AbortController();
    let st;
    try {
      st = await api.get("/devices/link", { signal: c.signal });
    } catch (err) {
      if (err.name === "AbortError" || destroyed || my !== attempt) return;
      note(`Can't reach your node right now (${err.message}). Trying again…`);
      schedule(my);
      return;
    } finally {
      if (ctrl === c) ctrl = null;
    }
    if (destroyed || my !== attempt) return;
    // A node that started again forgot the link.
    if (st.state === "none") st = { state: "failed", reason: "your node started again" };
    show(st);
    if (LINK_ACTIVE.includes(st.state)) schedule(my);
    else finished(st);
  }

  // note shows a passing problem under the step without redrawing it.
  function note(text) {
    let el = step.querySelector(".link-note");
    if (!el) { el = h("p", { class: "link-note error-text small", role: "status" }); step.append(el); }
    el.textContent = text;
  }

  function finished(st) {
    sessionStorage.removeItem(LINK_KEY);
    offer = null;
    if (st.state === "linked") {
      loadDevices();
      // The new device's name may reach the list a moment later.
      clearTimeout(later);
      later = setTimeout(loadDevices, 3000);
    }
  }

  function show(st) {
    // Digits that differ end the link: it is over for the person at once,
    // while the node still winds it down ("handover", then "failed").
    if (declined && st.state !== "linked") st = { ...st, state: "failed" };
    const key = st.state === "sas" ? "sas " + st.sas : st.state;
    if (key === shown) {
      const n = step.querySelector(".link-note");
      if (n) n.remove();
      if (st.state === "waiting") tick(st.expires);
      return;
    }
    shown = key;
    countdown = null;
    switch (st.state) {
      case "waiting": step.replaceChildren(...waiting(st)); tick(st.expires); break;
      case "connecting": step.replaceChildren(...busy("A new device is using the code. Getting the numbers to compare…", true)); break;
      case "sas": step.replaceChildren(...compare(st)); break;
      case "handover": step.replaceChildren(...busy("The numbers match. Handing your account over to the new device…", false)); break;
      case "linked": step.replaceChildren(...linked(st)); break;
      default: step.replaceChildren(...failed(st)); break;
    }
  }

  function idle() {
    shown = "";
    countdown = null;
    const btn = h("button", { type: "button", class: "btn primary", text: "Link a new device", on: { click: () => start(btn) } });
    step.replaceChildren(
      h("p", { text: "Use your account on another computer too. The new device gets your account, your handles and your contacts, and you check six numbers on both screens to make sure it's yours." }),
      h("p", { class: "muted small", text: "Only link devices you own: a linked device can read and send your messages." }),
      h("div", { class: "form-actions" }, btn));
  }

  async function start(btn, replace = false) {
    stopPolling();
    const my = ++attempt;
    declined = "";
    btn.disabled = true;
    btn.textContent = "Making a code…";
    try {
      if (replace) await api.del("/devices/link").catch(() => null);
      const o = await api.post("/devices/link");
      if (destroyed || my !== attempt) return;
      offer = o;
      sessionStorage.setItem(LINK_KEY, JSON.stringify(o));
      show({ state: "waiting", expires: o.expires });
      schedule(my);
    } catch (err) {
      if (destroyed || my !== attempt) return;
      startFailed(err);
    }
  }

  function startFailed(err) {
    shown = "";
    const again = h("button", { type: "button", class: "btn primary", text: "Try again", on: { click: () => start(again) } });
    if (err.status === 409) {
      const replace = h("button", { type: "button", class: "btn primary", text: "Cancel it and start again", on: { click: () => start(replace, true) } });
      step.replaceChildren(
        h("p", { class: "error-text", role: "alert", text: "Another link is already waiting for a new device: it was started in another tab or with callsign devices link." }),
        h("div", { class: "form-actions" }, replace));
      return;
    }
    step.replaceChildren(
      h("div", { class: "form-error", role: "alert" }, h("strong", { text: sentence(err.message) }), err.hint ? h("span", { text: err.hint }) : null),
      h("div", { class: "form-actions" }, again));
  }

  async function cancel(btn) {
    stopPolling();
    const my = ++attempt;
    if (btn) { btn.disabled = true; btn.textContent = "Cancelling…"; }
    try {
      await api.del("/devices/link");
    } catch (err) {
      if (err.status !== 404) showError(err, "Could not cancel the link");
    }
    sessionStorage.removeItem(LINK_KEY);
    offer = null;
    if (destroyed || my !== attempt) return;
    idle();
    toast("Link cancelled");
  }

  const cancelButton = () => {
    const b = h("button", { type: "button", class: "btn", text: "Cancel", on: { click: () => cancel(b) } });
    return b;
  };

  function waiting(st) {
    countdown = h("span", null);
    if (!offer) {
      return [
        h("p", { class: "link-status", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }),
          h("span", { text: "A link started in another tab or with callsign devices link is waiting for a new device. Its code is shown there." })),
        h("p", { class: "muted small" }, countdown),
        h("div", { class: "form-actions" }, cancelButton()),
      ];
    }
    const cmd = "callsign up --link " + offer.code;
    return [
      h("div", { class: "link-offer" },
        h("div", { class: "link-text" },
          h("p", { class: "link-lead", text: "On the new device run:" }),
          h("div", { class: "link-command" },
            h("code", { id: "link-command" }, "callsign up --link ", h("span", { id: "link-code", text: offer.code })),
            copyButton(cmd, "Copy the command", "Copy")),
          h("p", { class: "muted small" }, countdown),
          h("p", { class: "link-status", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), h("span", { text: "Waiting for the new device…" }))),
        h("figure", { class: "qr-figure" }, qrImage(offer.code, "QR code of the link code"), h("figcaption", { text: "The code as a QR code" }))),
      h("div", { class: "form-actions" }, cancelButton()),
    ];
  }

  function tick(expires) {
    if (!countdown || !expires) return;
    const at = new Date(expires);
    const left = (at.getTime() - Date.now()) / 1000;
    countdown.textContent = left > 0
      ? `The code works once and expires in ${since(left)}, at ${clock(at)}.`
      : "The code has expired.";
  }

  function busy(text, cancellable) {
    return [
      h("p", { class: "link-status", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), h("span", { text })),
      cancellable ? h("div", { class: "form-actions" }, cancelButton()) : null,
    ].filter(Boolean);
  }

  function compare(st) {
    const my = attempt;
    const input = h("input", { id: "link-sas", class: "sas-input", inputmode: "numeric", autocomplete: "off", spellcheck: "false", maxlength: 9, "aria-describedby": "link-sas-hint" });
    const err = h("p", { class: "error-text", role: "alert", hidden: true });
    const ok = h("button", { type: "submit", class: "btn primary", text: "Confirm" });
    async function submit(e) {
      e.preventDefault();
      err.hidden = true;
      const typed = input.value.replace(/\D/g, "");
      if (typed.length !== 6) {
        err.textContent = "Type all six numbers the new device shows.";
        err.hidden = false;
        input.focus();
        return;
      }
      ok.disabled = true;
      ok.textContent = "Checking…";
      try {
        const res = await api.post("/devices/link/confirm", { sas: typed });
        if (!destroyed && my === attempt) show(res);
      } catch (e2) {
        if (destroyed || my !== attempt) return;
        ok.disabled = false;
        ok.textContent = "Confirm";
        if (e2.status === 409) {
          // Other digits ended the link.
          declined = sentence(e2.message);
          show({ state: "failed" });
          return;
        }
        err.textContent = sentence(e2.message);
        err.hidden = false;
      }
    }
    const form = h("form", { class: "link-compare", on: { submit } },
      h("p", { text: "The new device shows six numbers too. Check that they are the same as these:" }),
      h("p", { class: "sas", id: "link-sas-digits", text: st.sas }),
      h("div", { class: "field" },
        h("label", { for: "link-sas", text: "Type the numbers the new device shows" }), input,
        h("p", { class: "hint", id: "link-sas-hint", text: "If they are different, press Cancel: someone else may be trying to use your code." })),
      err,
      h("div", { class: "form-actions" }, cancelButton(), ok));
    // The person's next move is typing the numbers, unless they are busy
    // elsewhere on the page.
    setTimeout(() => {
      const a = document.activeElement;
      if (input.isConnected && (!a || a === document.body || a.contains(step) || step.contains(a))) input.focus();
    }, 0);
    return [form];
  }

  function linked(st) {
    const name = (st.device && st.device.name) || "The new device";
    const again = h("button", { type: "button", class: "btn", text: "Link another device", on: { click: () => start(again) } });
    return [
      h("p", { class: "link-result ok-text", role: "status" }, icon("check"), h("span", { text: `${name} is linked` })),
      h("p", { class: "muted", text: "It has your account now, with your handles and contacts. New messages reach it as well as this device." }),
      h("div", { class: "form-actions" }, again),
    ];
  }

  function failed(st) {
    const again = h("button", { type: "button", class: "btn primary", text: "Start again", on: { click: () => start(again) } });
    return [
      h("p", { class: "link-result error-text", role: "alert" }, icon("alert"), h("span", { text: declined || linkFailure(st.reason) })),
      h("p", { class: "muted", text: declined ? "The link was stopped and nothing was shared with the new device. Start again, and compare the numbers on both screens." : "No device was linked." }),
      h("div", { class: "form-actions" }, again),
    ];
  }

  // Back on the page: follow the link under way, if any.
  async function resume() {
    step.replaceChildren(h("p", { class: "muted", text: "Loading…" }));
    let st;
    try {
      st = await api.get("/devices/link");
    } catch {
      if (!destroyed) idle();
      return;
    }
    if (destroyed || attempt !== 0) return;
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(LINK_KEY) || "null"); } catch { /* not ours */ }
    if (saved && saved.code && saved.expires === st.expires) offer = saved;
    else sessionStorage.removeItem(LINK_KEY);
    if (LINK_ACTIVE.includes(st.state)) {
      const my = ++attempt;
      show(st);
      schedule(my);
    } else if (offer && (st.state === "linked" || st.state === "failed")) {
      show(st);
      finished(st);
    } else {
      idle();
    }
  }

  loadDevices();
  resume();
  const off = store.on("revoked", drawDevices);
  return {
    destroy() {
      off();
      destroyed = true;
      stopPolling();
      clearTimeout(later);
    },
  };
}

// deviceRow is one device of the account in the list; with onRemove, it
// has a Remove button that calls onRemove(d, button).
function deviceRow(d, onRemove) {
  const name = d.name || "Unnamed device";
  const added = d.added ? new Date(d.added) : null;
  return h("li", { class: "device" + (d.revoked ? " revoked" : ""), title: d.id },
    h("span", { class: "nav-icon" }, icon("monitor")),
    h("span", { class: "row-main" },
      h("span", { class: "device-name", text: name }),
      added && added.getFullYear() > 2000
        ? h("span", { class: "muted small", text: "Added " + added.toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" }) })
        : null),
    d.current ? h("span", { class: "tag ok", text: "This device" }) : null,
    d.revoked ? h("span", { class: "tag danger", text: "Removed" }) : null,
    onRemove ? h("button", {
      type: "button", class: "btn small danger-outline", text: "Remove", "aria-label": `Remove ${name}`,
      on: { click: (e) => onRemove(d, e.currentTarget) },
    }) : null);
}

// linkFailure says in words why a link ended without a new device.
function linkFailure(reason) {
  const r = (reason || "").toLowerCase();
  if (r.includes("declined")) return "The link was stopped: the numbers didn't match, or someone said no on the new device.";
  if (r.includes("cancel")) return "The link was cancelled.";
  if (r.includes("expired or used")) return "The code expired or was already used.";
  if (r.includes("expired")) return "The code expired before a new device used it.";
  return reason ? `The link didn't work: ${reason.replace(/\.$/, "")}.` : "The link didn't work.";
}

// sentence starts text with a capital letter and ends it with a full stop.
function sentence(text) {
  const s = String(text || "").trim();
  if (!s) return s;
  return s[0].toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? "" : ".");
}

const MIN_BACKUP_PASSPHRASE = 12;

// backup writes the account, sealed under a passphrase, to a file the
// browser saves (POST /api/v1/backup): what a person needs to be
// themselves again on a new machine with `callsign up --restore FILE`.
function backup(body) {
  const pass = h("input", { id: "backup-pass", type: "password", autocomplete: "new-password", minlength: MIN_BACKUP_PASSPHRASE, required: true });
  const again = h("input", { id: "backup-again", type: "password", autocomplete: "new-password", required: true });
  const msg = h("p", { class: "error-text", role: "alert", hidden: true });
  const done = h("p", { class: "ok-text", role: "status", hidden: true });
  const button = h("button", { type: "submit", class: "btn primary", text: "Download the backup" });
  const withMessages = h("input", { type: "checkbox", id: "backup-messages" });
  async function submit(e) {
    e.preventDefault();
    msg.hidden = true;
    done.hidden = true;
    if (pass.value.length < MIN_BACKUP_PASSPHRASE) { msg.textContent = `The passphrase needs at least ${MIN_BACKUP_PASSPHRASE} characters: four or more words no one could guess make a good one.`; msg.hidden = false; pass.focus(); return; }
    if (pass.value !== again.value) { msg.textContent = "The two passphrases differ."; msg.hidden = false; again.focus(); return; }
    button.disabled = true;
    button.textContent = "Sealing the backup…";
    try {
      const blob = await api.post("/backup", { passphrase: pass.value, messages: withMessages.checked }, { blob: true });
      const name = `callsign-${new Date().toISOString().slice(0, 10)}.backup`;
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      pass.value = again.value = "";
      done.textContent = `Saved ${name} (${size(blob.size)}). Keep it somewhere safe, and the passphrase somewhere else.`;
      done.hidden = false;
    } catch (err) {
      msg.textContent = err.message + (err.hint ? ` (${err.hint})` : "");
      msg.hidden = false;
    } finally {
      button.disabled = false;
      button.textContent = "Download the backup";
    }
  }
  body.replaceChildren(
    h("div", { class: "card" }, h("h2", { text: "If this machine is lost" }),
      h("p", { text: "A backup brings you back on a new machine: your account, your handles, your contacts and your call settings, and your messages if you choose. Your contacts keep writing to you and see no change of key." }),
      h("p", { class: "muted", text: "On the new machine, start callsign and choose Restore from a backup on its welcome screen (or below, on this page), or run " }, h("code", { text: "callsign up --restore FILE" }))),
    h("form", { class: "card", on: { submit } },
      h("h2", { text: "Make a backup" }),
      h("p", { class: "muted", text: "The file is sealed with your passphrase, so it can live on a USB stick or in a cloud folder. Whoever has both the file and the passphrase has your account: keep them apart." }),
      h("div", { class: "field" }, h("label", { for: "backup-pass", text: "Passphrase (at least 12 characters)" }), pass),
      h("div", { class: "field" }, h("label", { for: "backup-again", text: "The same again" }), again),
      h("label", { class: "check" }, withMessages,
        h("span", null, h("strong", { text: "Include my messages" }), h("span", { class: "muted", text: "Every conversation comes back with the account. The file grows with them." }))),
      msg, done,
      h("div", { class: "form-actions" }, button)),
    h("section", { class: "card", "aria-labelledby": "restore-title" },
      h("h2", { id: "restore-title", text: "Restore from a backup" }),
      h("p", { class: "muted", text: "On a new machine: your backup takes the place of the account this node made when it first started. A node whose account already has a handle, contacts or conversations keeps it." }),
      restoreForm()));
  return {};
}

function node(body) {
  const status = h("dl", { class: "facts" });
  const hint = h("p", { class: "error-text", role: "status", hidden: true });
  const invite = h("section", { class: "card", "aria-labelledby": "invite-title", hidden: true });
  let shownInvite = null;
  const boxes = h("div", { class: "mailboxes" });
  const addrs = h("ul", { role: "list", class: "addrs mono small" });
  body.replaceChildren(
    h("div", { class: "card" }, h("h2", { text: "Status" }), hint, status),
    h("section", { class: "card", "aria-labelledby": "mailboxes-title" }, h("h2", { id: "mailboxes-title", text: "Mailboxes" }), boxes),
    invite,
    h("div", { class: "card" }, h("h2", { text: "Addresses" }), addrs),
    h("div", { class: "card" }, h("h2", { text: "This tab" }),
      h("p", { class: "muted", text: "The token that opened this app is kept for this tab only. Forget it to lock the app until you open the node's address again." }),
      h("button", { type: "button", class: "btn danger-outline", text: "Forget the token", on: { click: () => { api.setToken(null); location.replace("/"); } } })));
  // Only the figures are redrawn each time, so focus and selection stay.
  async function load() {
    try {
      const [st, peers] = await Promise.all([api.get("/status"), api.get("/peers")]);
      const me = store.state.me || {};
      const facts = [
        ["Connection to the app", store.state.connected ? "Live" : "Reconnecting…"],
        ["Peers connected", `${st.peers} (${peers.filter((p) => p.limited).length} through a relay)`],
        ["Routing table", `${st.routing_table} ${st.routing_table === 1 ? "peer" : "peers"}`],
        ["Mode", st.public ? "Public node (DHT server and relay for others)" : "Private node"],
        ["Relays", st.relays && st.relays.length ? st.relays.map(shortAccount).join(", ") : "none"],
        ["Storage encryption", st.encryption === "passphrase" ? "Passphrase" : "Key file"],
        ["Up for", since(st.uptime_s)],
        ["Data directory", st.data_dir],
        ["Version", st.version || "—"],
        ["API address", me.api || location.host],
      ];
      status.replaceChildren(...facts.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { class: k === "Data directory" ? "mono wrap" : "", text: String(v) })]));
      mailboxes(boxes, st);
      hint.hidden = !st.hint;
      hint.textContent = st.hint || "";
      // The invite (and its QR code) is redrawn only when it changes.
      const inv = st.invite || null;
      if ((inv && inv.invite) !== (shownInvite && shownInvite.invite)) {
        shownInvite = inv;
        inviteCard(invite, inv);
      }
      addrs.replaceChildren(...(me.addrs || []).map((a) => h("li", { text: a })));
    } catch (err) {
      status.replaceChildren(h("dd", { class: "error-text", text: err.message }));
    }
  }
  load();
  const timer = setInterval(load, 5000);
  return { destroy() { clearInterval(timer); } };
}

// mailboxes shows the community nodes that hold this node's messages while
// it is offline, what waits there, and, on a public node, what its own
// mailbox holds for its members.
function mailboxes(el, st) {
  const parts = [];
  const mine = st.mailboxes || [];
  if (mine.length) {
    parts.push(h("p", { class: "muted", text: "While this node is offline, messages to you wait at these community nodes, sealed: they can't read them or see who sent them. This node collects them when it starts and every 30 seconds." }));
    parts.push(h("ul", { role: "list", class: "mailbox-list" }, mine.map((m) => {
      const state = m.error ? `Not working: ${m.error}` : m.registered ? "Registered" : "Registering…";
      const last = m.last_drain ? `checked ${since((Date.now() - new Date(m.last_drain).getTime()) / 1000)} ago` : "not checked yet";
      return h("li", { class: "mailbox" },
        h("span", { class: "mono small", title: m.peer, text: shortAccount(m.peer) }),
        h("span", { class: m.error ? "error-text" : "", text: state }),
        h("span", { class: "muted small", text: `${m.waiting} waiting · ${m.drained} collected since start · ${last} · ${m.prekeys} keys for first contacts` }));
    })));
  } else if (!st.public) {
    parts.push(h("p", { class: "muted", text: "No mailbox: messages sent to you while this node is offline wait at the sender's node until you are both online. Join a community node (callsign up --join INVITE) and it holds them for you." }));
  }
  if (st.mailbox) {
    const held = st.mailbox;
    const parked = held.files ? ` and ${held.files} ${held.files === 1 ? "file" : "files"} (${size(held.file_bytes)})` : "";
    const arriving = held.partial_files ? ` (${held.partial_files} more ${held.partial_files === 1 ? "file is" : "files are"} still arriving)` : "";
    parts.push(h("p", { text: `This community node holds ${held.waiting} ${held.waiting === 1 ? "message" : "messages"} (${size(held.bytes)})${parked} for ${held.members} ${held.members === 1 ? "member" : "members"} while they are offline${arriving}.` }));
  }
  el.replaceChildren(...parts);
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 / 1024 / 1024).toFixed(1)} GiB`;
}

// inviteCard shows the invite a newcomer passes to `callsign up --join`:
// this community node's own, or the one this node joined with.
function inviteCard(card, inv) {
  card.hidden = !inv;
  if (!inv) { card.replaceChildren(); return; }
  const to = (inv.own ? "this community node" : "the community node you joined through") + (inv.name ? ` (${inv.name})` : "");
  card.replaceChildren(
    h("h2", { id: "invite-title", text: "Invite someone" }),
    h("p", { class: "muted", text: `A newcomer joins ${to} by running callsign up --join with this invite, or by scanning the code.` }),
    h("p", { class: "mono wrap small invite-text" }, inv.invite, copyButton(inv.invite, "Copy the invite")),
    h("figure", { class: "qr-figure" }, qrImage(inv.invite, "QR code of the invite"), h("figcaption", { text: "Scan to join" })));
}
