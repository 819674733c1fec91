// views/firstrun.js: the welcome screen of a node with no global handle
// yet: your self-certifying handle (and its QR code) and a form to claim a
// short handle, which takes seconds to a minute of proof of work; the
// claim shows its stages (claim-progress events), the time so far and an
// indeterminate bar. "Later" skips it for this account. Someone coming
// from another machine restores a backup here instead.

import * as api from "../api.js";
import * as store from "../store.js";
import { go, path } from "../nav.js";
import { h, icon, dialog, qrImage, copyButton, errorBox, field } from "../ui.js";

const STAGES = [
  ["lookup", "Checking the name is free"],
  ["proof-of-work", "Proof of work"],
  ["store", "Storing your claim on the network"],
  ["confirm", "Confirming it"],
];

const laterKey = () => "callsign.firstrun.later." + (store.state.me ? store.state.me.account : "");

export function show() {
  const me = store.state.me;
  let claimed = null;
  const d = dialog({
    label: "Welcome to callsign",
    cls: "firstrun",
    onClose: () => { if (!claimed) localStorage.setItem(laterKey(), "1"); },
    build: (close) => {
      const body = h("div", { class: "firstrun-body" });
      const intro = () => [
        h("div", { class: "brand" }, icon("at", "brand-icon"), h("span", { text: "callsign" })),
        h("h1", { id: "firstrun-title", text: "Welcome to callsign" }),
        h("p", { class: "lead", text: "No phone number, no central server. You already have an address that only your key can ever hold:" }),
        h("div", { class: "handle-box" },
          h("div", null, h("span", { class: "hint", text: "Your self-certifying handle" }), h("strong", { class: "mono", id: "self-handle", text: me.handle })),
          copyButton(me.handle, "Copy your handle")),
        h("div", { class: "firstrun-qr" }, qrImage(me.handle, `QR code of your handle ${me.handle}`),
          h("p", { class: "hint", text: "Someone can scan this to add you." })),
      ];
      const form = claimForm({
        onClaimed: (c) => {
          claimed = c;
          body.replaceChildren(
            h("div", { class: "brand" }, icon("at", "brand-icon"), h("span", { text: "callsign" })),
            h("h1", { text: "You're on the network" }),
            h("p", { class: "claimed-name", id: "claimed-handle", text: "@" + c.name }),
            h("p", { class: "lead", text: "People can now find you by this handle. Share it, or let them scan the code." }),
            h("div", { class: "firstrun-qr" }, qrImage("@" + c.name, `QR code of your handle @${c.name}`)),
            h("p", { class: "muted", text: "Your account lives on this machine only. A backup, sealed with a passphrase, brings it and @" + c.name + " back if the machine is lost." }),
            h("div", { class: "form-actions center" },
              h("button", { type: "button", class: "btn", text: "Back up now", on: { click: () => { close(); go(path("settings", "backup")); } } }),
              h("button", { type: "button", class: "btn primary", text: "Start messaging", autofocus: true, on: { click: close } })));
          body.querySelector("button.primary").focus();
        },
      });
      body.append(...intro(),
        h("section", { class: "claim-section", "aria-labelledby": "claim-title" },
          h("h2", { id: "claim-title", text: "Claim a short handle" }),
          h("p", { class: "muted", text: "A handle like @alice is easier to share. Your node proves some work for it first, so nobody can grab thousands of names: this takes from a few seconds to a minute." }),
          form.el),
        h("div", { class: "form-actions center" },
          h("button", { type: "button", class: "btn link", text: "Link to an existing account", title: "Use callsign on another device already? Link this one to the same account.",
            on: { click: () => body.replaceChildren(...linkScreen(() => body.replaceChildren(...shown))) } }),
          h("button", { type: "button", class: "btn link", text: "Restore from a backup", title: "Had callsign on another machine? A backup brings your account, handles and contacts here.",
            on: { click: () => body.replaceChildren(...restoreScreen(() => body.replaceChildren(...shown))) } }),
          h("button", { type: "button", class: "btn link", text: "Later", on: { click: close } })));
      const shown = [...body.children];
      return body;
    },
  });
  return d;
}

/** linkScreen is the welcome screen's "Link to an existing account": this
 * node, whose own account was never used, becomes a device of an account
 * used elsewhere. The person types the code their other device shows
 * (Settings → Devices → Link a new device); both devices show six
 * numbers, the person says whether they match here and types them there;
 * the account comes over, the node starts again as a device of it and the
 * page loads again. back returns to the welcome. */
function linkScreen(back) {
  return [
    h("div", { class: "brand" }, icon("at", "brand-icon"), h("span", { text: "callsign" })),
    h("h1", { id: "firstrun-title", text: "Link to an existing account" }),
    h("p", { class: "lead", text: "Your account can run on this machine too, beside the devices you use it on now. No device is the main one." }),
    h("p", { class: "lead" }, "On a device already using your account, open Settings → Devices → Link a new device (or run ",
      h("code", { text: "callsign devices link" }), "), then type the code it shows here."),
    h("p", { class: "muted", text: "This node's own new account, never used, gives way to yours." }),
    joinFlow(back),
  ];
}

// The join states (GET /api/v1/devices/join) in which the page asks again.
const JOIN_ACTIVE = ["connecting", "sas", "handover"];
// How often the page asks how the link goes.
const JOIN_POLL = 500;

/** joinFlow is linkScreen's form and what follows it: POST
 * /api/v1/devices/join with the code, then GET /api/v1/devices/join every
 * half second; the digits are answered with POST
 * /api/v1/devices/join/confirm, Cancel is DELETE /api/v1/devices/join.
 * Once linked it waits for the node to come back with the account and
 * loads the page again. */
function joinFlow(back) {
  const mine = store.state.me ? store.state.me.account : "";
  const code = field("Code", { id: "join-code", class: "mono", autocomplete: "off", autocapitalize: "off", spellcheck: "false", placeholder: "callsign:link/…", required: true },
    "Shown by your other device. It starts with callsign:link/.");
  const name = field("Name of this device (optional)", { id: "join-name", autocomplete: "off", placeholder: "laptop", maxlength: 64 },
    "How your other devices list this one.");
  const submit = h("button", { type: "submit", id: "join-submit", class: "btn primary", text: "Link" });
  const error = h("div", { id: "join-error" });
  const form = h("form", { class: "form join-form", on: { submit: start } },
    code.el, name.el, error,
    h("div", { class: "form-actions" }, h("button", { type: "button", class: "btn link", text: "Back", on: { click: back } }), submit));
  // step holds the form or where the link is; status, kept in it while
  // the link runs, says so to screen readers.
  const step = h("div", { class: "join-step", tabindex: "-1" }, form);
  const status = h("p", { id: "join-status", class: "link-status", role: "status" });
  let attempt = 0; // the link the page follows: answers about an older one are dropped
  let timer = 0;
  let shown = ""; // the state drawn
  let last = ""; // the last state the node gave
  let declined = false; // the person said the numbers differ
  let matched = false; // the person said the numbers match

  function showForm(err) {
    attempt++;
    clearTimeout(timer);
    shown = last = "";
    declined = matched = false;
    submit.disabled = false;
    submit.textContent = "Link";
    error.replaceChildren(...(err ? [errorBox(err)] : []));
    step.replaceChildren(form);
    // A code works once: the next one the other device shows replaces it.
    settle(code.input);
    setTimeout(() => code.input.select(), 0);
  }

  async function start(e) {
    e.preventDefault();
    // A pasted code may come with spaces or line breaks, or as the whole
    // command.
    const c = code.input.value.trim().replace(/^callsign\s+up\s+--link\s+/, "").replace(/\s+/g, "");
    code.input.value = c;
    if (!c) return;
    submit.disabled = true;
    submit.textContent = "Linking…";
    error.replaceChildren();
    const my = ++attempt;
    let st;
    try {
      st = await api.post("/devices/join", { code: c, name: name.input.value.trim() });
    } catch (err) {
      if (my !== attempt) return;
      submit.disabled = false;
      submit.textContent = "Link";
      error.replaceChildren(errorBox(err));
      code.input.focus();
      return;
    }
    if (my !== attempt) return;
    follow(my, st);
  }

  // follow draws st and asks again while the link runs.
  function follow(my, st) {
    last = st.state;
    show(my, st);
    if (JOIN_ACTIVE.includes(st.state)) {
      clearTimeout(timer);
      timer = setTimeout(() => poll(my), JOIN_POLL);
    }
  }

  async function poll(my) {
    if (my !== attempt) return;
    if (!step.isConnected) {
      // The welcome screen went away: a link that has not begun to hand
      // the account over stops with it.
      attempt++;
      if (last === "connecting" || last === "sas") api.del("/devices/join").catch(() => {});
      return;
    }
    let st;
    try {
      st = await api.get("/devices/join");
    } catch (err) {
      if (my !== attempt) return;
      // Once the account is coming, a node that does not answer may be
      // starting again as a device of it: it answers "none" when back.
      note(`Can't reach your node right now (${err.message}). Trying again…`);
      clearTimeout(timer);
      timer = setTimeout(() => poll(my), JOIN_POLL);
      return;
    }
    if (my !== attempt) return;
    // A node that started again forgot the link: once the numbers were
    // said to match, it may have started again as a device of the
    // account faster than the page asked.
    if (st.state === "none") st = matched ? { state: "linked" } : { state: "failed", reason: "your node started again" };
    follow(my, st);
  }

  // note shows a passing problem under the step without redrawing it.
  function note(text) {
    let el = step.querySelector(".link-note");
    if (!el) { el = h("p", { class: "link-note error-text small", role: "status" }); step.append(el); }
    el.textContent = text;
  }

  function show(my, st) {
    // Numbers said to differ end the link for the person at once, while
    // the node winds it down.
    if (declined && st.state !== "failed") st = { state: "failed", reason: "declined" };
    const key = st.state === "sas" ? "sas " + st.sas : st.state;
    if (key === shown) {
      const n = step.querySelector(".link-note");
      if (n) n.remove();
      return;
    }
    shown = key;
    switch (st.state) {
      case "connecting":
        busy("Connecting to your other device…", null, cancelButton());
        break;
      case "sas": compare(my, st); break;
      case "handover":
        busy("Receiving your account…", "Your handles, your contacts and your recent chats come to this device.");
        break;
      case "linked": linked(my, st); break;
      default: failed(st); break;
    }
  }

  function busy(text, more, ...actions) {
    spin(text);
    step.replaceChildren(status,
      more ? h("p", { class: "muted", text: more }) : null,
      actions.length ? h("div", { class: "form-actions center" }, actions) : null);
    settle(null);
  }

  function spin(text) {
    status.replaceChildren(h("span", { class: "spinner", "aria-hidden": "true" }), h("span", { text }));
  }

  function compare(my, st) {
    const err = h("div");
    const answer = async (match) => {
      yes.disabled = no.disabled = true;
      err.replaceChildren();
      if (match) matched = true;
      else declined = true;
      try {
        const res = await api.post("/devices/join/confirm", { match });
        if (my !== attempt) return;
        follow(my, res);
        // The other device may still wait for the numbers.
        if (shown.startsWith("sas ")) spin("Waiting for your other device…");
      } catch (e) {
        if (my !== attempt) return;
        if (!match) { show(my, { state: "failed" }); return; }
        matched = false;
        yes.disabled = no.disabled = false;
        err.replaceChildren(errorBox(e));
      }
    };
    const yes = h("button", { type: "button", id: "join-match", class: "btn primary", text: "They match", on: { click: () => answer(true) } });
    const no = h("button", { type: "button", id: "join-mismatch", class: "btn", text: "They don't match", on: { click: () => answer(false) } });
    status.replaceChildren(h("span", { text: "Check that your other device shows the same numbers, and type them there." }));
    step.replaceChildren(status,
      h("p", { class: "sas", id: "join-sas", text: st.sas }),
      err,
      h("div", { class: "form-actions center" }, cancelButton(), no, yes));
    // Not on "They match": the person compares first.
    settle(null);
  }

  function linked(my, st) {
    busy("Linked. Starting again as a device of your account…", null);
    step.append(h("div", { class: "bar indeterminate", role: "progressbar", "aria-label": "Starting again" }, h("span")));
    waitForAccount((a) => (st.account ? a === st.account : !!a && a !== mine),
      "your node did not come back as a device of your account",
      "look at the terminal where `callsign up` runs, then load this page again")
      .then(() => location.reload())
      .catch((err) => {
        if (my !== attempt) return;
        step.replaceChildren(errorBox(err),
          h("div", { class: "form-actions center" }, h("button", { type: "button", class: "btn primary", text: "Load again", on: { click: () => location.reload() } })));
        settle(step.querySelector("button"));
      });
  }

  function failed(st) {
    attempt++;
    clearTimeout(timer);
    const again = h("button", { type: "button", id: "join-retry", class: "btn primary", text: "Try again", on: { click: () => showForm() } });
    step.replaceChildren(
      h("p", { class: "link-result error-text", role: "alert", id: "join-failed" }, icon("alert"), h("span", { text: joinFailure(declined ? "declined" : st.reason) })),
      h("p", { class: "muted", text: "Nothing was linked. Start a new link on your other device, then type its new code here." }),
      h("div", { class: "form-actions center" }, again));
    settle(again);
  }

  function cancelButton() {
    return h("button", {
      type: "button", id: "join-cancel", class: "btn link", text: "Cancel", on: {
        click: async (e) => {
          e.currentTarget.disabled = true;
          attempt++;
          clearTimeout(timer);
          let err = null;
          try { await api.del("/devices/join"); } catch (e2) { if (e2.status !== 404) err = e2; }
          showForm(err);
        },
      },
    });
  }

  // settle keeps the keyboard in the step once what had focus is gone:
  // on el when given, else on the step.
  function settle(el) {
    setTimeout(() => {
      if (!step.isConnected) return;
      const a = document.activeElement;
      if (a && a !== document.body && a.isConnected && a !== step) return;
      (el || step).focus({ preventScroll: !el });
    }, 0);
  }

  settle(code.input);
  return step;
}

/** joinFailure says in words why a link failed, from the node's reason. */
function joinFailure(reason) {
  const r = (reason || "").toLowerCase();
  if (r.includes("declined")) return "The link was stopped: the numbers didn't match.";
  if (r.includes("cancel")) return "The link was cancelled.";
  if (r.includes("expired")) return "The code expired or was already used.";
  return reason ? `The link didn't work: ${reason.replace(/\.$/, "")}.` : "The link didn't work.";
}

/** MAX_RESTORE_FILE is the largest backup the page sends: the node takes
 * 16 MiB of JSON (api.MaxRestoreBody), the file in base64 (4/3 of it). */
const MAX_RESTORE_FILE = 12 * 1024 * 1024 - 1024;

/** restoreScreen is the welcome screen's restore; back returns to the
 * welcome. */
function restoreScreen(back) {
  return [
    h("div", { class: "brand" }, icon("at", "brand-icon"), h("span", { text: "callsign" })),
    h("h1", { id: "firstrun-title", text: "Restore your account" }),
    h("p", { class: "lead", text: "This node made an account of its own when it first started. Your backup takes its place: your handles and contacts come back, and your contacts see no change of key." }),
    restoreForm(back),
  ];
}

/** restoreForm restores a backup: the file and its passphrase go to the
 * node (POST /api/v1/restore), which checks them and that its own account
 * is unused, answers with the backup's account and starts again with it
 * on the same address; the page waits for the node to name that account,
 * then loads again. back, when given, is a Back button's action. Used on
 * the welcome screen and in Settings → Back up your account. */
export function restoreForm(back) {
  const file = field("Backup file", { id: "restore-file", type: "file", accept: ".backup,application/octet-stream", required: true },
    "The file callsign saved: callsign-DATE.backup.");
  const pass = field("Passphrase", { id: "restore-pass", type: "password", autocomplete: "current-password", required: true },
    "The one you gave when you made the backup.");
  const btn = h("button", { type: "submit", class: "btn primary", text: "Restore" });
  const result = h("div", { class: "claim-result", role: "status" });
  const form = h("form", {
    class: "form restore-form", on: {
      submit: async (e) => {
        e.preventDefault();
        const f = file.input.files[0];
        if (!f || !pass.input.value) return;
        if (f.size > MAX_RESTORE_FILE) {
          result.replaceChildren(errorBox(new api.ApiError(413, "too_large", `This backup (${Math.round(f.size / 1048576)} MB) is too large to send through the browser.`,
            "restore it on the machine itself: callsign up --restore FILE")));
          return;
        }
        btn.disabled = true;
        btn.textContent = "Checking the backup…";
        result.replaceChildren();
        const fields = [...form.children]; // put back if the restore fails
        try {
          const r = await api.post("/restore", { backup: await base64(f), passphrase: pass.input.value });
          pass.input.value = "";
          const who = r.handles.length ? "@" + r.handles[0] : r.account;
          const plural = (n, one) => `${n} ${one}${n === 1 ? "" : "s"}`;
          const held = [r.contacts ? plural(r.contacts, "contact") : "", r.groups ? plural(r.groups, "group") : ""].filter(Boolean).join(" and ");
          form.replaceChildren(
            h("p", { class: "claimed-name", text: who }),
            h("p", { class: "lead", text: `Restoring your account. Your node is starting again as a new device of it${held ? `, with ${held}` : ""}.` }),
            h("div", { class: "bar indeterminate", role: "progressbar", "aria-label": "Restore in progress" }, h("span")));
          await waitForAccount((a) => a === r.account, "the node did not come back with the restored account",
            "look at the terminal where `callsign up` runs; the backup is unchanged, so you can try again");
          location.reload();
        } catch (err) {
          // Also after the progress replaced the form: the node did not
          // come back in time, and the person must see why, not a bar.
          form.replaceChildren(...fields);
          btn.disabled = false;
          btn.textContent = "Restore";
          result.replaceChildren(errorBox(err));
        }
      },
    },
  }, file.el, pass.el, result,
  h("div", { class: "form-actions" }, back ? h("button", { type: "button", class: "btn link", text: "Back", on: { click: back } }) : null, btn));
  return form;
}

/** base64 reads a file into base64 text, as JSON carries bytes. */
async function base64(file) {
  const b = new Uint8Array(await file.arrayBuffer());
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

/** waitForAccount polls the node, which is starting again (GET /api/v1/id
 * fails meanwhile), every half second until the account it names passes
 * want; after a minute it gives up with an error of message and hint. */
async function waitForAccount(want, message, hint) {
  const until = Date.now() + 60000;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    try {
      if (want((await api.get("/id")).account)) return;
    } catch { /* starting again */ }
  }
  throw new api.ApiError(0, "unavailable", message, hint);
}

/** claimForm is the form that claims a handle, with its progress; used on
 * the welcome screen and in settings. */
export function claimForm({ onClaimed }) {
  const f = field("Handle", { id: "claim-name", autocomplete: "off", spellcheck: "false", placeholder: "alice", required: true, autofocus: true },
    "3 to 32 letters or digits of one script, with . _ - inside.");
  f.el.classList.add("at-field");
  const btn = h("button", { type: "submit", class: "btn primary", text: "Claim" });
  const progress = h("div", { class: "claim-progress", hidden: true, role: "status" });
  const result = h("div", { class: "claim-result" });
  let off = null, timer = 0;

  const el = h("form", {
    class: "form claim-form", on: {
      submit: async (e) => {
        e.preventDefault();
        const name = f.input.value.trim().replace(/^@/, "");
        if (!name) return;
        btn.disabled = true;
        f.input.readOnly = true;
        result.replaceChildren();
        const started = Date.now();
        let stage = "";
        const draw = () => {
          const secs = Math.floor((Date.now() - started) / 1000);
          const at = STAGES.findIndex(([s]) => s === stage);
          progress.replaceChildren(
            h("p", null, h("strong", { text: `Claiming @${name}…` }), h("span", { class: "elapsed", text: ` ${secs} s` })),
            h("div", { class: "bar indeterminate", role: "progressbar", "aria-label": "Claim in progress" }, h("span")),
            h("ol", { class: "stages" }, STAGES.map(([s, words], i) => h("li", { class: i < at ? "done" : i === at ? "current" : "" },
              i < at ? icon("check") : h("span", { class: "dot", "aria-hidden": "true" }), h("span", { text: words }),
              i === at ? h("span", { class: "sr-only", text: " (in progress)" }) : null))));
        };
        off = store.on("claim-progress", (p) => { if (p.name === name || p.name === name.toLowerCase() || !stage) { stage = p.stage; draw(); } });
        progress.hidden = false;
        draw();
        timer = setInterval(() => { progress.querySelector(".elapsed").textContent = ` ${Math.floor((Date.now() - started) / 1000)} s`; }, 1000);
        try {
          const c = await api.post("/handles", { name });
          if (c.status === "taken") {
            const mine = store.state.me && c.owner === store.state.me.account;
            if (mine) { await done(c); return; }
            result.replaceChildren(h("div", { class: "form-error", role: "alert" },
              h("strong", { text: `@${c.name} is taken` }), h("span", { text: "Someone else holds it. Try another name." }),
              h("span", { class: "mono small", text: "Held by " + c.owner })));
          } else {
            await done(c);
            return;
          }
        } catch (err) {
          result.replaceChildren(errorBox(err));
        } finally {
          stop();
        }
        btn.disabled = false;
        f.input.readOnly = false;
        f.input.focus();
        f.input.select();
      },
    },
  }, f.el, h("div", { class: "form-actions" }, btn), progress, result);

  function stop() {
    clearInterval(timer);
    if (off) off();
    off = null;
    progress.hidden = true;
  }
  async function done(c) {
    stop();
    await Promise.all([store.load("handles"), store.load("me")]).catch(() => {});
    onClaimed(c);
  }
  return { el };
}
