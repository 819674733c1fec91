// views/calllog.js: live calls first, then the call log, newest first.
// Missed incoming calls are marked in red with a button to call back.

import * as store from "../store.js";
import { path } from "../nav.js";
import { h, icon, iconButton, avatar, listTime, duration, shortAccount, missed, reasonText } from "../ui.js";

const call = { start: (peer, video) => import("./call.js").then((m) => m.start(peer, video)) };


function summary(c) {
  if (c.state !== "ended") return c.state === "active" ? "On the call now" : "Ringing now";
  if (c.blocked) return "Refused by your call settings";
  if (missed(c)) return "Missed call";
  const dir = c.direction === "in" ? "Incoming" : "Outgoing";
  if (c.duration_s > 0 && (c.end_reason === "hangup" || c.end_reason === "remote-hangup")) {
    return `${dir} · ${duration(c.duration_s)}${c.path ? " · " + c.path : ""}`;
  }
  return `${dir} · ${reasonText(named(c))}`;
}

const named = (c) => ({ ...c, peer_name: c.peer_name || store.nameOf(c.peer) });

function callIcon(c) {
  const ok = c.state !== "ended" || c.duration_s > 0;
  return icon(c.direction === "in" ? "arrowIn" : "arrowOut", "call-dir " + (missed(c) || c.blocked ? "missed" : ok ? "ok" : ""));
}

export function list(el) {
  let selected = null;
  const ul = h("ul", { role: "list", class: "rows", "aria-label": "Call log" });
  el.append(
    h("header", { class: "pane-header" }, h("h1", { text: "Calls" }),
      h("a", { class: "icon-btn", href: "/settings/calls", "aria-label": "Call settings", title: "Call settings" }, icon("settings"))),
    h("div", { class: "pane-body" }, ul));

  function render() {
    const calls = store.state.calls;
    ul.replaceChildren(...calls.map((c) => {
      const name = c.peer_name || store.nameOf(c.peer);
      return h("li", { class: "call-row" + (missed(c) ? " missed" : "") },
        h("a", { class: "row-link", href: path("calls", c.id), dataset: { peer: c.id }, "aria-current": c.id === selected ? "page" : null },
          avatar(name, c.peer),
          h("span", { class: "row-main" },
            h("span", { class: "row-top" }, h("span", { class: "row-name", text: name }), h("time", { class: "row-time", datetime: c.start, text: listTime(c.start) })),
            h("span", { class: "row-bottom" }, h("span", { class: "row-preview" }, callIcon(c), h("span", { text: summary(c) }))))),
        missed(c) ? iconButton("phone", `Call ${name} back`, () => call.start(c.peer, false), "call-back") : null);
    }));
    if (!calls.length) ul.append(h("li", { class: "empty-list muted", text: "No calls yet." }));
  }
  const seen = () => {
    localStorage.setItem("callsign.calls.seen", String(Date.now()));
    store.emit("calls", store.state.calls);
  };
  const off = store.on("calls", render);
  render();
  seen();
  return { select(p) { selected = p; render(); }, destroy: off };
}

export function detail(el, id) {
  const root = h("section", { class: "page", "aria-labelledby": "call-title" });
  el.append(root);
  function render() {
    const c = store.state.calls.find((x) => x.id === id);
    if (!c) {
      root.replaceChildren(h("header", { class: "page-header" }, h("a", { class: "icon-btn back", href: "/calls", "aria-label": "Back to calls" }, icon("back")),
        h("h1", { id: "call-title", text: "Call" })), h("div", { class: "page-body" }, h("p", { class: "muted", text: "This call is no longer in the log." })));
      return;
    }
    const name = c.peer_name || store.nameOf(c.peer);
    const facts = [
      ["Direction", c.direction === "in" ? "Incoming" : "Outgoing"],
      ["When", new Date(c.start).toLocaleString()],
      ["Outcome", c.state === "ended" ? reasonText(named(c)) : c.state],
      ["Duration", c.duration_s ? duration(c.duration_s) : "—"],
      ["Path", c.path ? (c.path === "relay" ? "Relay (your address stayed hidden)" : "Direct") : "—"],
    ];
    if (c.setup_ms) facts.push(["Set-up time", `${c.setup_ms} ms`]);
    if (c.rtt_ms) facts.push(["Round trip", `${c.rtt_ms} ms`]);
    if (c.packets_sent || c.packets_received) facts.push(["Packets", `${c.packets_sent} sent, ${c.packets_received} received, ${(c.loss * 100).toFixed(1)} % lost`]);
    if (c.bytes_sent || c.bytes_received) facts.push(["Data", `${kb(c.bytes_sent)} sent, ${kb(c.bytes_received)} received`]);
    if (c.blocked) facts.push(["Refused", "Your call settings kept this call from ringing"]);
    root.replaceChildren(
      h("header", { class: "page-header mobile-only" }, h("a", { class: "icon-btn back", href: "/calls", "aria-label": "Back to calls", title: "Back to calls" }, icon("back"))),
      h("div", { class: "page-body" },
        h("div", { class: "profile" }, avatar(name, c.peer, "xl"), h("h1", { id: "call-title", class: "profile-name", text: name }),
          h("div", { class: missed(c) ? "missed-text" : "muted" }, callIcon(c), " ", summary(c)),
          h("div", { class: "profile-actions" },
            h("a", { class: "action", href: path("chats", c.peer) }, icon("chat"), h("span", { text: "Message" })),
            h("button", { type: "button", class: "action", on: { click: () => call.start(c.peer, false) } }, icon("phone"), h("span", { text: missed(c) ? "Call back" : "Voice call" })),
            h("button", { type: "button", class: "action", on: { click: () => call.start(c.peer, true) } }, icon("video"), h("span", { text: "Video call" })))),
        h("div", { class: "card" }, h("h2", { text: "Details" }),
          h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })])),
          h("p", { class: "muted small" }, "Account ", h("span", { class: "mono", text: shortAccount(c.peer) })))));
  }
  const off = store.on("calls", render);
  render();
  return { destroy: off };
}

function kb(b) {
  if (!b) return "0 KB";
  return b > 1e6 ? (b / 1e6).toFixed(1) + " MB" : Math.max(1, Math.round(b / 1e3)) + " KB";
}
