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

/** linkScreen is the welcome screen's "Link to an existing account": how
 * to make this node a device of an account used elsewhere. The link runs
 * when the node starts (`callsign up --link CODE`); back returns to the
 * welcome. */
function linkScreen(back) {
  const cmd = "callsign up --link CODE";
  return [
    h("div", { class: "brand" }, icon("at", "brand-icon"), h("span", { text: "callsign" })),
    h("h1", { id: "firstrun-title", text: "Link to an existing account" }),
    h("p", { class: "lead", text: "Your account can run on this machine too, beside the devices you use it on now. No device is the main one." }),
    h("ol", { class: "steps" },
      h("li", { text: "On a device where you use callsign, open Settings → Devices → Link a new device (or run callsign devices link). It shows a code." }),
      h("li", null, "Stop this node (Ctrl-C where it runs) and start it again with that code:",
        h("div", { class: "handle-box" }, h("strong", { class: "mono", text: cmd }), copyButton(cmd, "Copy the command"))),
      h("li", { text: "Both show six numbers: type this machine's on the other device, and answer y in this machine's terminal if they match. Your handles, contacts and the last 30 days of chats come here." })),
    h("p", { class: "muted", text: "This node's own new account, never used, gives way to yours." }),
    h("div", { class: "form-actions center" },
      h("button", { type: "button", class: "btn", text: "Back", on: { click: back } })),
  ];
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
          form.replaceChildren(
            h("p", { class: "claimed-name", text: who }),
            h("p", { class: "lead", text: `Restoring your account. Your node is starting again as a new device of it${r.contacts ? `, with ${r.contacts} contact${r.contacts === 1 ? "" : "s"}` : ""}.` }),
            h("div", { class: "bar indeterminate", role: "progressbar", "aria-label": "Restore in progress" }, h("span")));
          await waitForAccount(r.account);
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

/** waitForAccount polls the node, which is starting again, until it names
 * account; it gives up after a minute. */
async function waitForAccount(account) {
  const until = Date.now() + 60000;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    try {
      if ((await api.get("/id")).account === account) return;
    } catch { /* starting again */ }
  }
  throw new api.ApiError(0, "unavailable", "the node did not come back with the restored account",
    "look at the terminal where `callsign up` runs; the backup is unchanged, so you can try again");
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
