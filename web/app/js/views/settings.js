// views/settings.js: your handles and account, notifications, who may
// call you and how, and the node's status.

import * as api from "../api.js";
import * as store from "../store.js";
import * as notify from "../notify.js";
import { path } from "../nav.js";
import { h, icon, avatar, showError, toast, qrImage, copyButton, since, shortAccount } from "../ui.js";
import { claimForm, restoreForm } from "./firstrun.js";

const SECTIONS = [
  ["profile", "Profile and handles", "at"],
  ["notifications", "Notifications", "bell"],
  ["calls", "Call settings", "phone"],
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
      h("div", { class: "card" }, h("h2", { text: "Tab title" }), h("p", { class: "muted", text: "The tab's title shows how many messages and requests are unread, like “(3) callsign”." })));
  }
  render();
  return {};
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
  api.get("/settings/calls").then((x) => { s = x; render(); }, (err) => body.replaceChildren(h("p", { class: "error-text", text: err.message })));
  render();
  return {};
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
    parts.push(h("p", { text: `This community node holds ${held.waiting} ${held.waiting === 1 ? "message" : "messages"} (${size(held.bytes)}) for ${held.members} ${held.members === 1 ? "member" : "members"} while they are offline.` }));
  }
  el.replaceChildren(...parts);
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
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
