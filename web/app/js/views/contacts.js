// views/contacts.js: the address book. Add someone by handle after a
// preview of what the network says about it (whois), give them a pet name,
// follow, block, remove; compare the safety number (also as a QR code) and
// mark it verified; and see, loudly, when a contact's key has changed.

import * as api from "../api.js";
import * as store from "../store.js";
import { go, path } from "../nav.js";
import { h, icon, iconButton, avatar, srOnly, showError, confirm, toast, field, errorBox, qrImage, copyButton, listTime } from "../ui.js";
const call = { start: (peer, video) => import("./call.js").then((m) => m.start(peer, video)) };

export function list(el) {
  let selected = null;
  let filter = "";
  const search = h("input", { type: "search", id: "contact-search", placeholder: "Search contacts", autocomplete: "off",
    on: { input: () => { filter = search.value.trim().toLowerCase(); render(); } } });
  const ul = h("ul", { role: "list", class: "rows", "aria-label": "Contacts" });
  el.append(
    h("header", { class: "pane-header" }, h("h1", { text: "Contacts" }),
      h("a", { class: "icon-btn", href: "/contacts/add", "aria-label": "Add contact", title: "Add contact" }, icon("userPlus"))),
    h("div", { class: "search" }, icon("search"), h("label", { for: "contact-search", class: "sr-only", text: "Search contacts" }), search),
    h("div", { class: "pane-body" }, ul));

  function render() {
    const cs = [...store.state.contacts]
      .filter((c) => !filter || c.petname.toLowerCase().includes(filter) || (c.handle || "").toLowerCase().includes(filter))
      .sort((a, b) => (b.key_changed - a.key_changed) || a.petname.localeCompare(b.petname));
    ul.replaceChildren(...cs.map((c) => h("li", null,
      h("a", { class: "row-link", href: path("contacts", c.account), dataset: { peer: c.account }, "aria-current": c.account === selected ? "page" : null },
        avatar(c.petname, c.account),
        h("span", { class: "row-main" },
          h("span", { class: "row-top" }, h("span", { class: "row-name", text: c.petname }), badges(c)),
          h("span", { class: "row-bottom" }, h("span", { class: "row-preview", text: c.handle ? (c.handle.includes("~") ? c.handle : "@" + c.handle) : c.account })))))));
    if (!cs.length) {
      ul.append(h("li", { class: "empty-list" }, h("p", { class: "muted", text: store.state.contacts.length ? "No contact matches your search." : "No contacts yet." }),
        store.state.contacts.length ? null : h("a", { class: "btn primary", href: "/contacts/add", text: "Add a contact" })));
    }
  }
  const off = store.on("contacts", render);
  render();
  return { select(p) { selected = p; render(); }, destroy: off };
}

function badges(c) {
  return h("span", { class: "tags" },
    c.key_changed ? h("span", { class: "tag danger" }, icon("alert"), "Key changed") : null,
    c.verified && !c.key_changed ? h("span", { class: "tag ok" }, icon("shield"), "Verified") : null,
    c.blocked ? h("span", { class: "tag", text: "Blocked" }) : null,
    c.following ? h("span", { class: "tag", text: "Following" }) : null);
}

export function detail(el, param) {
  if (param === "add") return addForm(el);
  return contactPage(el, param);
}

function addForm(el) {
  const name = field("Handle", { id: "add-handle", autocomplete: "off", spellcheck: "false", placeholder: "@alice", required: true, "data-autofocus": "" },
    "A handle like @alice, a self-certifying handle like alice~k3x9q2mf7v, or an account id (csa1…).");
  const lookBtn = h("button", { type: "submit", class: "btn primary", text: "Look up" });
  const out = h("div", { class: "whois-out", "aria-live": "polite" });
  const form = h("form", { class: "card form", on: { submit: (e) => { e.preventDefault(); lookup(); } } }, name.el, h("div", { class: "form-actions" }, lookBtn));
  el.append(h("section", { class: "page", "aria-labelledby": "add-title" },
    h("header", { class: "page-header" },
      h("a", { class: "icon-btn back", href: "/contacts", "aria-label": "Back to contacts", title: "Back to contacts" }, icon("back")),
      h("h1", { id: "add-title", text: "Add a contact" })),
    h("div", { class: "page-body" }, form, out)));

  let seq = 0;
  async function lookup() {
    const q = name.input.value.trim();
    if (!q) return;
    const my = ++seq;
    lookBtn.disabled = true;
    out.replaceChildren(h("p", { class: "muted" }, h("span", { class: "spinner", "aria-hidden": "true" }), `Looking up ${q} on the network…`));
    try {
      const w = await api.get("/whois/" + api.seg(q));
      if (my === seq) out.replaceChildren(preview(w, q));
    } catch (err) {
      if (my === seq) out.replaceChildren(errorBox(err));
    } finally {
      lookBtn.disabled = false;
    }
  }

  function preview(w, q) {
    const card = h("div", { class: "card whois", role: "group", "aria-label": "Lookup result" });
    const shown = w.name ? (w.name.includes("~") ? w.name : "@" + w.name) : q;
    if (w.status !== "ok") {
      const words = {
        not_found: [`Nobody holds ${shown}`, "Check the spelling, or ask them for their self-certifying handle (name~suffix)."],
        expired: [`${shown} has expired`, "Its owner hasn't been online to renew it for a while. Ask them for their self-certifying handle."],
        conflict: [`The network disagrees about who holds ${shown}`, "Part of the network holds another owner's record. Don't add it: ask them for their self-certifying handle."],
      }[w.status] || [`${shown}: ${w.status}`, ""];
      card.append(h("div", { class: "banner " + (w.status === "conflict" ? "danger" : "") }, icon("alert"), h("div", null, h("strong", { text: words[0] }), h("p", { text: words[1] }))));
      if (w.owners && w.owners.length) {
        card.append(h("ul", { role: "list", class: "owners" }, w.owners.map((o) => h("li", { class: "mono" }, `${o.account} — ${o.count} peer${o.count === 1 ? "" : "s"}`))));
      }
      return card;
    }
    const existing = store.contactOf(w.account);
    card.append(h("div", { class: "whois-head" }, avatar(w.display_name || w.name || w.handle, w.account, "large"),
      h("div", null, h("h2", { text: shown }), w.display_name ? h("p", { class: "muted", text: w.display_name }) : null,
        h("p", { class: "status-ok" }, icon("check"), "Found on the network"))));
    if (w.key_changed || w.warning) {
      card.append(h("div", { class: "banner danger", role: "alert" }, icon("alert"), h("div", null, h("strong", { text: "Key changed" }), h("p", { text: w.warning || "This handle now points to a different key than the one you pinned." }))));
    }
    card.append(h("dl", { class: "facts" },
      h("dt", { text: "Account (key)" }), h("dd", { class: "mono wrap" }, w.account, copyButton(w.account, "Copy the account id")),
      h("dt", { text: "Self-certifying handle" }), h("dd", { class: "mono", text: w.handle || "—" }),
      h("dt", { text: "Devices" }), h("dd", null, w.devices && w.devices.length
        ? h("ul", { role: "list", class: "devices" }, w.devices.map((d) => h("li", null, h("span", { class: "mono", text: d.peer.slice(0, 12) + "…" + d.peer.slice(-6) }),
          h("span", { class: "muted", text: ` · added ${listTime(d.created)}, valid until ${new Date(d.expires).toLocaleDateString()}` }))))
        : "none listed"),
      w.pinned ? [h("dt", { text: "In your contacts" }), h("dd", { text: existing ? `as ${existing.petname}` : "yes" })] : null));
    if (existing) {
      card.append(h("div", { class: "form-actions" }, h("a", { class: "btn primary", href: path("contacts", w.account), text: `Open ${existing.petname}` })));
      return card;
    }
    const suggested = (w.name && !w.name.includes("~") ? w.name : (w.display_name || "")).slice(0, 64);
    const pet = field("Pet name", { id: "add-petname", value: suggested, autocomplete: "off", maxlength: 64 }, "What you call them. Only you see it.");
    const addBtn = h("button", { type: "submit", class: "btn primary", text: "Add contact" });
    const err = h("div");
    card.append(h("form", {
      class: "form", on: {
        submit: async (e) => {
          e.preventDefault();
          addBtn.disabled = true;
          err.replaceChildren();
          try {
            const c = await api.post("/contacts", { name: q, as: pet.input.value.trim() || undefined });
            await store.load("contacts");
            toast(`${c.petname} added to your contacts`);
            go(path("contacts", c.account));
          } catch (e2) {
            addBtn.disabled = false;
            err.replaceChildren(errorBox(e2));
          }
        },
      },
    }, pet.el, err, h("p", { class: "hint", text: "Adding pins their key as it is now. If the handle ever points to another key, callsign will warn you." }),
    h("div", { class: "form-actions" }, addBtn)));
    return card;
  }
  return {};
}

function contactPage(el, account) {
  const root = h("section", { class: "page contact-page", "aria-labelledby": "contact-title" });
  el.append(root);
  let safety = null, safetyErr = null, rules = null;
  // The profile block with its Message and call buttons stays the same
  // elements while the contact is unchanged: the page renders again as
  // the safety number and call rules arrive, and a click whose press and
  // release met two copies of a button would do nothing.
  let profile = null, profileOf = "";

  async function loadSafety() {
    try { safety = await api.get(`/safety/${api.seg(account)}`); safetyErr = null; }
    catch (err) { safety = null; safetyErr = err; }
    render();
  }
  async function loadRules() {
    try { rules = (await api.get("/settings/calls")).rules || {}; } catch { rules = null; }
    render();
  }

  async function act(fn, what) {
    try { await fn(); await store.load("contacts"); }
    catch (err) { showError(err, what); }
  }

  function render() {
    const c = store.contactOf(account);
    if (!c) {
      root.replaceChildren(h("header", { class: "page-header" },
        h("a", { class: "icon-btn back", href: "/contacts", "aria-label": "Back to contacts", title: "Back to contacts" }, icon("back")),
        h("h1", { id: "contact-title", text: "Not a contact" })),
      h("div", { class: "page-body" }, h("p", { class: "muted", text: store.state.contacts.length ? "This account isn't in your contacts." : "Loading…" })));
      return;
    }
    const handle = c.handle ? (c.handle.includes("~") ? c.handle : "@" + c.handle) : "";
    const focusWas = document.activeElement && root.contains(document.activeElement) ? document.activeElement.getAttribute("aria-label") || document.activeElement.textContent : null;
    const key = JSON.stringify(c);
    if (!profile || profileOf !== key) {
      profileOf = key;
      profile = h("div", { class: "profile" }, avatar(c.petname, c.account, "xl"),
        h("h1", { id: "contact-title", class: "profile-name", text: c.petname }),
        handle ? h("div", { class: "muted", text: handle }) : null,
        badges(c),
        h("div", { class: "profile-actions" },
          h("a", { class: "action", href: path("chats", c.account) }, icon("chat"), h("span", { text: "Message" })),
          h("button", { type: "button", class: "action", on: { click: () => call.start(c.account, false) } }, icon("phone"), h("span", { text: "Voice call" })),
          h("button", { type: "button", class: "action", on: { click: () => call.start(c.account, true) } }, icon("video"), h("span", { text: "Video call" }))));
    }
    root.replaceChildren(
      h("header", { class: "page-header mobile-only" },
        h("a", { class: "icon-btn back", href: "/contacts", "aria-label": "Back to contacts", title: "Back to contacts" }, icon("back"))),
      h("div", { class: "page-body" },
        profile,
        c.key_changed ? h("div", { class: "banner danger big", role: "alert" }, icon("alert"), h("div", null,
          h("strong", { text: `${c.petname}'s key has changed` }),
          h("p", { text: `${handle || "Their handle"} now points to a different key than the one you added. They may have set up callsign again on a new device — or someone may be impersonating them. Their new messages wait in requests until you verify.` }),
          h("p", { text: "Call or meet them, compare the safety number below, and mark it as verified only if it matches." }))) : null,
        safetyCard(c),
        nameCard(c),
        h("div", { class: "card" }, h("h2", { text: "Account" }),
          h("dl", { class: "facts" },
            h("dt", { text: "Account id" }), h("dd", { class: "mono wrap" }, c.account, copyButton(c.account, "Copy the account id")),
            h("dt", { text: "Added" }), h("dd", { text: new Date(c.added_at).toLocaleString() }))),
        callCard(c),
        h("div", { class: "card" }, h("h2", { text: "Privacy" }),
          h("div", { class: "setting-row" }, h("div", null, h("strong", { text: c.following ? "Following" : "Not following" }),
            h("p", { class: "muted", text: "People you follow can call you when calls are set to “People I follow”." })),
          h("button", { type: "button", class: "btn", text: c.following ? "Unfollow" : "Follow", on: { click: () => act(() => api.post(`/contacts/${api.seg(account)}/${c.following ? "unfollow" : "follow"}`), "Could not change follow") } })),
          h("div", { class: "setting-row" }, h("div", null, h("strong", { text: c.blocked ? "Blocked" : "Not blocked" }),
            h("p", { class: "muted", text: "A blocked person's messages and calls are dropped without telling them." })),
          h("button", { type: "button", class: "btn " + (c.blocked ? "" : "danger-outline"), text: c.blocked ? "Unblock" : "Block", on: { click: async () => {
            if (!c.blocked && !(await confirm(`Block ${c.petname}?`, "Their messages and calls will be dropped without telling them.", "Block", true))) return;
            act(() => api.post(`/contacts/${api.seg(account)}/${c.blocked ? "unblock" : "block"}`), "Could not change block");
          } } })),
          h("div", { class: "setting-row" }, h("div", null, h("strong", { text: "Remove contact" }),
            h("p", { class: "muted", text: "Forgets their pinned key and pet name. Your messages stay." })),
          h("button", { type: "button", class: "btn danger", text: "Remove", on: { click: async () => {
            if (!(await confirm(`Remove ${c.petname}?`, "Their pinned key and pet name will be forgotten. If they write again, it will be a message request.", "Remove", true))) return;
            try { await api.del(`/contacts/${api.seg(account)}`); await store.load("contacts"); toast(`${c.petname} removed`); go("/contacts", { replace: true }); }
            catch (err) { showError(err, "Could not remove"); }
          } } })))));
    if (focusWas) {
      const again = [...root.querySelectorAll("button, a, input, select")].find((x) => (x.getAttribute("aria-label") || x.textContent) === focusWas);
      if (again) again.focus();
    }
  }

  function safetyCard(c) {
    const card = h("div", { class: "card safety" + (c.key_changed ? " danger" : "") }, h("h2", { text: "Safety number" }));
    if (safetyErr) { card.append(errorBox(safetyErr)); return card; }
    if (!safety) { card.append(h("p", { class: "muted", text: "Loading…" })); return card; }
    const groups = safety.safety_number.split(/\s+/);
    card.append(
      h("p", { class: "muted", text: `Compare these numbers with the ones ${c.petname} sees. If they match, nobody sits between you.` }),
      h("div", { class: "safety-body" },
        h("div", { class: "safety-number", role: "group", "aria-label": "Safety number" }, groups.map((g) => h("span", { class: "mono", text: g }))),
        qrImage(safety.safety_number, `QR code of your safety number with ${c.petname}`)),
      safety.verified
        ? h("p", { class: "status-ok" }, icon("shield"), "You have verified this safety number.")
        : h("div", { class: "form-actions" }, h("button", {
          type: "button", class: "btn primary", text: "Mark as verified", on: {
            click: async () => {
              try {
                const s = await api.post(`/safety/${api.seg(account)}/confirm`);
                await store.load("contacts");
                toast(`${c.petname} is verified`);
                if (s.account && s.account !== account) go(path("contacts", s.account), { replace: true });
                else loadSafety();
              } catch (err) { showError(err, "Could not verify"); }
            },
          },
        })));
    return card;
  }

  function nameCard(c) {
    const f = field("Pet name", { value: c.petname, autocomplete: "off", maxlength: 64 });
    const save = h("button", { type: "submit", class: "btn", text: "Save name" });
    return h("form", {
      class: "card form", on: {
        submit: async (e) => {
          e.preventDefault();
          const as = f.input.value.trim();
          if (!as || as === c.petname) return;
          save.disabled = true;
          try { await api.post("/contacts", { name: c.account, as }); await store.load("contacts"); toast(`Renamed to ${as}`); }
          catch (err) { showError(err, "Could not rename"); save.disabled = false; }
        },
      },
    }, h("h2", { text: "Name" }), h("p", { class: "muted small", text: "What you call them. Only you see it." }), h("div", { class: "inline-form" }, f.el, save));
  }

  function callCard(c) {
    const card = h("div", { class: "card" }, h("h2", { text: "Calls from " + c.petname }));
    if (!rules) { card.append(h("p", { class: "muted", text: "Loading…" })); return card; }
    const sel = h("select", {
      id: "call-rule", on: {
        change: async () => {
          try { rules = (await api.post("/settings/calls", { rule_name: c.account, rule: sel.value })).rules || {}; toast("Call rule saved"); }
          catch (err) { showError(err, "Could not save the call rule"); }
        },
      },
    },
    h("option", { value: "default", text: "Follow my call setting", selected: !rules[c.account] }),
    h("option", { value: "allow", text: "Always let them ring", selected: rules[c.account] === "allow" }),
    h("option", { value: "deny", text: "Never let them ring", selected: rules[c.account] === "deny" }));
    card.append(h("div", { class: "field" }, h("label", { for: "call-rule", text: "Can ring me" }), sel));
    return card;
  }

  const offs = [store.on("contacts", render), store.on("key-change", loadSafety)];
  render();
  loadSafety();
  loadRules();
  return { destroy() { offs.forEach((f) => f()); } };
}
