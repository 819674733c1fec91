// views/firstrun.js: the welcome screen of a node with no global handle
// yet: your self-certifying handle (and its QR code) and a form to claim a
// short handle, which takes seconds to a minute of proof of work; the
// claim shows its stages (claim-progress events), the time so far and an
// indeterminate bar. "Later" skips it for this account.

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
        h("div", { class: "form-actions center" }, h("button", { type: "button", class: "btn link", text: "Later", on: { click: close } })));
      return body;
    },
  });
  return d;
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
