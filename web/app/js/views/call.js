// views/call.js: voice and video calls in the browser, and the screens for
// them (the ringing dialog, the call screen with its quality graph).
//
// The media contract with the node: the tab holds one RTCPeerConnection to
// its own node ({iceServers: []}), always with an audio and a video
// transceiver (sendrecv, Opus and VP8 only) so that the camera can be
// turned on in a voice call; it gathers its candidates (at most ~1 s),
// posts the offer to /calls/{id}/browser and applies the node's answer.
// The node bridges that connection to the call with the other node. While
// an incoming call rings, the tab makes that connection ahead (no camera,
// no microphone, no media until answered) and answers with it ({tab}), so
// the call's media flows as soon as it connects.
// Muting replaces the audio track with null, so no audio leaves at all.
// window.callsign.pc is the live call's RTCPeerConnection (null without
// one), the debugging handle the tests use.

import * as api from "../api.js";
import * as store from "../store.js";
import * as notify from "../notify.js";
import { go, path } from "../nav.js";
import { h, icon, avatar, duration, toast, showError, dialog, reasonText } from "../ui.js";

let cur = null; // the live call of this tab
let ringing = null; // {call, stop, dlg}
const early = new Map(); // call-state events for ids this tab doesn't know yet
let screen = null; // the call screen's elements

function init() {
  window.callsign = window.callsign || {};
  window.callsign.pc = null;
  store.on("call-state", onState);
  window.addEventListener("pagehide", () => {
    if (cur && cur.id && cur.state !== "ended") api.hangupOnExit(cur.id);
  });
  document.addEventListener("keydown", (e) => {
    if (!cur || !screen || e.ctrlKey || e.metaKey || e.altKey) return;
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName)) return;
    if (e.key === "m" || e.key === "M") { e.preventDefault(); toggleMute(); }
    else if (e.key === "v" || e.key === "V") { e.preventDefault(); toggleCamera(); }
  });
}

function newCall(props) {
  return { id: "", state: "calling", path: "", muted: false, camOn: false, activeAt: 0, samples: [], last: null, warnings: [], ...props };
}

/** start calls peer (an account id), with the camera on if video. */
export async function start(peer, video) {
  if (cur) { toast("You're already in a call", "hang up first"); return; }
  const c = cur = newCall({ peer, direction: "out", video, name: store.nameOf(peer) });
  // The invite, the camera and the connection to the node all start at
  // once: the other side rings while the camera opens.
  const placing = api.post("/calls", { to: peer, browser: true });
  peer_(c);
  const media = acquire(c, video);
  const offer = makeOffer(c.pc);
  showScreen(c);
  let placed;
  try {
    placed = await placing;
  } catch (err) {
    offer.catch(() => {});
    media.catch(() => {});
    finish(c, "", err);
    return;
  }
  if (c.ended) { api.post(`/calls/${api.seg(placed.id)}/hangup`).catch(() => {}); return; }
  c.id = placed.id;
  apply(c, placed);
  if (early.has(c.id)) { apply(c, early.get(c.id)); early.delete(c.id); }
  early.clear();
  await attach(c, offer);
}

async function answer(call, video) {
  const pre = ringing && ringing.call.id === call.id ? ringing.pre : null;
  if (ringing) ringing.pre = null; // this answer takes it over
  stopRinging();
  if (cur) { if (pre) pre.ready.finally(() => pre.pc && pre.pc.close()).catch(() => {}); toast("You're already in a call", "hang up first"); return; }
  const c = cur = newCall({ id: call.id, peer: call.peer, direction: "in", video, state: "connecting", name: store.nameOf(call.peer, call.peer_name) });
  // The tab got its connection to the node ready while the call rang:
  // answer with it, and open the camera at the same time.
  const tab = pre ? await pre.ready.catch(() => "") : "";
  if (c.ended) { if (pre && pre.pc) pre.pc.close(); return; }
  if (tab) {
    adopt(c, pre);
    const answering = api.post(`/calls/${api.seg(call.id)}/answer`, { tab });
    const media = acquire(c, video);
    showScreen(c);
    try {
      await answering;
    } catch (err) {
      media.catch(() => {});
      answerFailed(c, err);
      return;
    }
    media.catch(() => {});
    return;
  }
  if (pre && pre.pc) pre.pc.close();
  const answering = api.post(`/calls/${api.seg(call.id)}/answer`, { browser: true });
  peer_(c);
  const media = acquire(c, video);
  const offer = makeOffer(c.pc);
  showScreen(c);
  try {
    await answering;
  } catch (err) {
    offer.catch(() => {});
    media.catch(() => {});
    answerFailed(c, err);
    return;
  }
  await attach(c, offer);
}

function answerFailed(c, err) {
  if (err.status === 409) {
    finish(c, "", null, "Answered in another tab");
    toast("Answered in another tab");
  } else {
    finish(c, "", err);
  }
}

// prepare gets the tab's connection to its node ready while a call rings,
// without touching the camera or the microphone: answering then only has
// to open them. Resolves to the node's name for the connection ("" if it
// could not be made; answering then makes one).
function prepare(call) {
  const pre = { pc: null, senders: null, remote: new MediaStream() };
  pre.ready = (async () => {
    pre.pc = connection(pre);
    const sdp = await makeOffer(pre.pc);
    const ans = await api.post(`/calls/${api.seg(call.id)}/browser`, { sdp });
    await pre.pc.setRemoteDescription({ type: "answer", sdp: ans.sdp });
    return ans.tab || "";
  })();
  pre.ready.catch((err) => console.warn("getting ready to answer", err.message));
  return pre;
}
async function decline(call) {
  stopRinging();
  try { await api.post(`/calls/${api.seg(call.id)}/decline`); }
  catch (err) { if (err.status !== 409) showError(err, "Could not decline"); }
}

/** hangup ends this tab's call. */
export async function hangup() {
  const c = cur;
  if (!c) return;
  if (c.id) api.post(`/calls/${api.seg(c.id)}/hangup`).catch((err) => console.warn("hangup", err.message));
  finish(c, c.direction === "out" && c.state !== "active" ? "cancelled" : "hangup");
}

// connection makes the tab's RTCPeerConnection to its node, always with
// an audio and a video transceiver (Opus and VP8 only), and sends what it
// receives to holder.remote (a MediaStream).
function connection(holder) {
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle" });
  const at = pc.addTransceiver("audio", { direction: "sendrecv" });
  const vt = pc.addTransceiver("video", { direction: "sendrecv" });
  prefer(at, "audio", "audio/opus");
  prefer(vt, "video", "video/vp8");
  holder.audioSender = at.sender;
  holder.videoSender = vt.sender;
  pc.ontrack = (e) => {
    holder.remote.addTrack(e.track);
    if (screen && screen.call === holder) screen.remote.srcObject = holder.remote;
  };
  return pc;
}

// peer_ gives call c a new connection to the node.
function peer_(c) {
  c.remote = new MediaStream();
  c.pc = connection(c);
  live(c);
}

// adopt gives call c the connection prepared while it rang.
function adopt(c, pre) {
  c.remote = pre.remote;
  c.audioSender = pre.audioSender;
  c.videoSender = pre.videoSender;
  c.pc = pre.pc;
  c.pc.ontrack = (e) => {
    c.remote.addTrack(e.track);
    if (screen && screen.call === c) screen.remote.srcObject = c.remote;
  };
  live(c);
}

function live(c) {
  window.callsign.pc = c.pc;
  c.pc.onconnectionstatechange = () => {
    if (c.pc.connectionState === "failed" && cur === c) warn(c, "The media connection to your node failed");
  };
}

// acquire opens the microphone (and the camera for video) and puts them
// on the connection; a missing camera leaves a voice call.
async function acquire(c, video) {
  let stream = null;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true, video });
  } catch (err) {
    if (video) {
      try { stream = await navigator.mediaDevices.getUserMedia({ audio: true }); warn(c, "Your camera isn't available: " + err.message); }
      catch { /* reported below */ }
    }
    if (!stream) warn(c, "Your microphone isn't available: " + err.message);
  }
  if (c.ended) { if (stream) stream.getTracks().forEach((t) => t.stop()); throw new Error("call ended"); }
  c.mic = stream ? stream.getAudioTracks()[0] || null : null;
  c.cam = stream ? stream.getVideoTracks()[0] || null : null;
  await c.audioSender.replaceTrack(c.mic);
  await c.videoSender.replaceTrack(c.cam);
  c.camOn = !!c.cam;
  update(c);
}

// makeOffer resolves to the connection's offer, with its candidates.
async function makeOffer(pc) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc, 1000);
  return pc.localDescription.sdp;
}

function prefer(transceiver, kind, mime) {
  try {
    const caps = RTCRtpReceiver.getCapabilities(kind);
    const codecs = caps ? caps.codecs.filter((x) => x.mimeType.toLowerCase() === mime) : [];
    if (codecs.length && transceiver.setCodecPreferences) transceiver.setCodecPreferences(codecs);
  } catch (err) { console.warn("codec preferences", err); }
}

// gathered resolves when the offer has the candidates the node can use:
// when gathering completes, or soon after the first UDP host candidate
// (the browser gathers its UDP candidates within milliseconds and its TCP
// ones, which the node drops, a tenth of a second later), at most after ms.
function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    let soon = 0;
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t); clearTimeout(soon);
      pc.removeEventListener("icegatheringstatechange", check);
      pc.removeEventListener("icecandidate", cand);
      resolve();
    }
    function check() { if (pc.iceGatheringState === "complete") done(); }
    function cand(e) { if (!soon && e.candidate && / udp /i.test(e.candidate.candidate)) soon = setTimeout(done, 30); }
    pc.addEventListener("icegatheringstatechange", check);
    pc.addEventListener("icecandidate", cand);
  });
}

// attach gives the node this tab's offer and applies its answer.
async function attach(c, offer) {
  try {
    const sdp = await offer;
    if (c.ended) return;
    const ans = await api.post(`/calls/${api.seg(c.id)}/browser`, { sdp });
    if (c.ended) return;
    await c.pc.setRemoteDescription({ type: "answer", sdp: ans.sdp });
  } catch (err) {
    if (c.ended) return;
    api.post(`/calls/${api.seg(c.id)}/hangup`).catch(() => {});
    finish(c, "failed", { message: "Your camera and microphone could not join the call: " + err.message, hint: err.hint });
  }
}

/** onIncoming rings for an incoming call (main.js hands it the
 * incoming-call events). */
export function onIncoming(call) {
  const later = store.state.callStates.get(call.id);
  if (later && later.state !== "ringing") return; // over before this module loaded
  if ((cur && cur.id === call.id) || (ringing && ringing.call.id === call.id)) return;
  if (cur) return; // this tab is in a call; the node answers busy
  const name = store.nameOf(call.peer, call.peer_name);
  const stop = notify.ring();
  notify.show(`${name} is calling`, "Incoming call", "call-" + call.id, () => {});
  document.getElementById("alerts").replaceChildren(h("div", { class: "sr-only", text: `Incoming call from ${name}` }));
  const dlg = dialog({
    title: `${name} is calling`,
    cls: "incoming",
    dismissable: false,
    build: () => h("div", { class: "incoming-body" },
      h("div", { class: "pulse" }, avatar(name, call.peer, "xl")),
      h("p", { class: "muted", text: "Incoming call" }),
      h("div", { class: "incoming-actions" },
        h("button", { type: "button", class: "round-btn danger", "aria-label": "Decline", on: { click: () => decline(call) } }, icon("phone", "hang"), h("span", { text: "Decline" })),
        h("button", { type: "button", class: "round-btn ok", "aria-label": "Answer voice only", autofocus: true, on: { click: () => answer(call, false) } }, icon("phone"), h("span", { text: "Voice" })),
        h("button", { type: "button", class: "round-btn ok", "aria-label": "Answer with video", on: { click: () => answer(call, true) } }, icon("video"), h("span", { text: "Video" })))),
  });
  ringing = { call, stop, dlg, pre: prepare(call) };
}

function stopRinging() {
  if (!ringing) return;
  ringing.stop();
  ringing.dlg.close();
  if (ringing.pre) {
    const pre = ringing.pre;
    pre.ready.finally(() => { if (pre.pc) pre.pc.close(); }).catch(() => {});
  }
  ringing = null;
}

function onState(call) {
  if (ringing && ringing.call.id === call.id && call.state !== "ringing") {
    stopRinging();
    if (call.state === "ended") {
      const name = store.nameOf(call.peer, call.peer_name);
      if (call.end_reason === "missed" || call.end_reason === "cancelled") {
        toast(`Missed call from ${name}`);
        notify.show("Missed call", name, "call-" + call.id, () => go("/calls"));
      }
    } else if (!cur || cur.id !== call.id) {
      toast("Answered in another tab");
    }
  }
  if (!cur) return;
  if (!cur.id) { early.set(call.id, call); return; }
  if (call.id === cur.id) apply(cur, call);
}

function apply(c, call) {
  if (c.ended) return;
  const was = c.state;
  c.state = call.state;
  if (call.path) c.path = call.path;
  if (call.peer_name) c.name = call.peer_name;
  if (c.state === "active" && !c.activeAt) c.activeAt = Date.now();
  if (c.state === "ended") { finish(c, call.end_reason || "hangup"); return; }
  if (was !== c.state) announce(statusText(c));
  if ((c.state === "connecting" || c.state === "active") && !c.poll) c.poll = setInterval(() => poll(c), 1000);
  update(c);
}

async function poll(c) {
  if (c.ended || !c.id) return;
  let s;
  try { s = await api.get(`/calls/${api.seg(c.id)}`); } catch { return; }
  if (c.ended) return;
  const now = performance.now();
  if (c.last) {
    const dt = (now - c.last.t) / 1000;
    c.samples.push({
      rtt: s.rtt_ms || 0,
      loss: (s.loss || 0) * 100,
      up: Math.max(0, (s.bytes_sent - c.last.sent) * 8 / 1000 / dt),
      down: Math.max(0, (s.bytes_received - c.last.recv) * 8 / 1000 / dt),
    });
    if (c.samples.length > 60) c.samples.shift();
  }
  c.last = { t: now, sent: s.bytes_sent, recv: s.bytes_received };
  if (s.state !== c.state || (s.path && s.path !== c.path)) apply(c, s);
  else update(c);
}

async function toggleMute() {
  const c = cur;
  if (!c || !c.audioSender) return;
  c.muted = !c.muted;
  try { await c.audioSender.replaceTrack(c.muted ? null : c.mic); }
  catch (err) { showError(err, "Could not change mute"); }
  announce(c.muted ? "Microphone muted" : "Microphone on");
  update(c);
}

async function toggleCamera() {
  const c = cur;
  if (!c || !c.videoSender) return;
  if (c.camOn) {
    await c.videoSender.replaceTrack(null);
    if (c.cam) c.cam.stop(); // the camera's light goes off
    c.cam = null;
    c.camOn = false;
  } else {
    try {
      const s = await navigator.mediaDevices.getUserMedia({ video: true });
      if (c.ended) { s.getTracks().forEach((t) => t.stop()); return; }
      c.cam = s.getVideoTracks()[0];
      await c.videoSender.replaceTrack(c.cam);
      c.camOn = true;
    } catch (err) {
      showError(err, "Your camera isn't available");
    }
  }
  announce(c.camOn ? "Camera on" : "Camera off");
  update(c);
}

function warn(c, text) {
  c.warnings.push(text);
  update(c);
}

function finish(c, reason, err, text) {
  if (c.ended) return;
  c.ended = true;
  c.state = "ended";
  c.endReason = reason;
  clearInterval(c.poll);
  for (const t of [c.mic, c.cam]) if (t) t.stop();
  if (c.pc) c.pc.close();
  if (window.callsign.pc === c.pc) window.callsign.pc = null;
  if (cur === c) cur = null;
  c.endText = text || (err ? err.message + (err.hint ? " — " + err.hint : "") : reasonText({ ...c, end_reason: reason, peer_name: c.name }));
  announce("Call ended. " + c.endText);
  update(c);
  store.refresh("calls", 300);
  // The ended screen stays a few seconds (longer for an error), unless the
  // person starts using it; its Close button takes the focus.
  if (screen && screen.call === c) {
    const s = screen;
    s.el.querySelector(".call-after .btn").focus();
    const keep = () => { s.touched = true; };
    s.el.addEventListener("pointerdown", keep);
    s.el.addEventListener("keydown", keep);
    setTimeout(() => { if (screen === s && !s.touched) closeScreen(); }, err ? 15000 : 8000);
  }
}

function statusText(c) {
  switch (c.state) {
    case "calling": return "Calling…";
    case "ringing": return c.direction === "out" ? "Ringing…" : "Ringing";
    case "connecting": return "Connecting…";
    case "active": return duration((Date.now() - c.activeAt) / 1000);
    case "ended": return c.endText || "Call ended";
  }
  return c.state;
}

function announce(text) {
  if (screen) screen.live.textContent = text;
}

// The call screen.
function showScreen(c) {
  closeScreen();
  const remote = h("video", { class: "remote-video", autoplay: true, playsinline: true, "aria-label": `${c.name}'s video` });
  const local = h("video", { class: "local-video", autoplay: true, playsinline: true, muted: true, "aria-label": "Your camera" });
  local.muted = true;
  const status = h("p", { class: "call-status" });
  const pathTag = h("span", { class: "path-tag", hidden: true });
  const warnings = h("div", { class: "call-warnings", role: "alert" });
  const canvas = h("canvas", { class: "quality-graph", width: 300, height: 90, role: "img", "aria-label": "Call quality over the last minute" });
  const legend = h("p", { class: "quality-legend" });
  const quality = h("div", { class: "call-quality", hidden: true }, canvas, legend);
  const mute = h("button", { type: "button", class: "round-btn", "aria-label": "Mute", "aria-pressed": "false", title: "Mute (M)", on: { click: toggleMute } }, icon("mic"), h("span", { text: "Mute" }));
  const cam = h("button", { type: "button", class: "round-btn", "aria-label": "Camera", "aria-pressed": "false", title: "Camera (V)", on: { click: toggleCamera } }, icon("video"), h("span", { text: "Camera" }));
  const stats = h("button", { type: "button", class: "round-btn", "aria-label": "Call quality", "aria-pressed": "false", on: { click: () => { quality.hidden = !quality.hidden; stats.setAttribute("aria-pressed", String(!quality.hidden)); } } }, icon("info"), h("span", { text: "Quality" }));
  const end = h("button", { type: "button", class: "round-btn danger", "aria-label": "Hang up", on: { click: hangup } }, icon("phone", "hang"), h("span", { text: "Hang up" }));
  const close = h("button", { type: "button", class: "btn", text: "Close", on: { click: closeScreen } });
  const again = h("button", { type: "button", class: "btn primary", text: "Call again", on: { click: () => { closeScreen(); start(c.peer, c.video); } } });
  const after = h("div", { class: "call-after", hidden: true }, close, again);
  const controls = h("div", { class: "call-controls" }, mute, cam, stats, end);
  const peerBox = h("div", { class: "call-peer" }, h("div", { class: "pulse" }, avatar(c.name, c.peer, "xxl")));
  const live = h("div", { class: "sr-only", "aria-live": "polite" });
  const el = h("section", { class: "call-screen", role: "region", "aria-label": `Call with ${c.name}` },
    h("div", { class: "call-stage" }, remote, peerBox, local),
    h("div", { class: "call-top" }, h("h2", { class: "call-name", text: c.name }), status, pathTag),
    warnings, quality, controls, after, live);
  document.body.append(el);
  document.body.classList.add("in-call");
  screen = { el, call: c, remote, local, status, pathTag, warnings, canvas, legend, quality, mute, cam, controls, after, peerBox, live, again };
  screen.tick = setInterval(() => update(c), 1000);
  end.focus();
  update(c);
}

function closeScreen() {
  if (!screen) return;
  clearInterval(screen.tick);
  screen.el.remove();
  document.body.classList.remove("in-call");
  screen = null;
}

function update(c) {
  if (!screen || screen.call !== c) return;
  const s = screen;
  s.status.textContent = statusText(c);
  s.el.dataset.state = c.state;
  s.pathTag.hidden = !c.path || c.ended;
  s.pathTag.textContent = c.path === "relay" ? "Relay" : "Direct";
  s.pathTag.title = c.path === "relay" ? "Through a relay: neither side learns the other's address" : "Straight between the two nodes";
  if (s.warnings.childElementCount !== c.warnings.length) s.warnings.replaceChildren(...c.warnings.map((w) => h("p", null, icon("alert"), h("span", { text: w }))));
  // The buttons' insides change only with their state: replacing them under
  // a pointer that is pressing would lose the click.
  toggle(s.mute, c.muted, c.muted ? "micOff" : "mic", c.muted ? "Unmute" : "Mute");
  s.mute.disabled = !c.mic || c.ended;
  toggle(s.cam, c.camOn, c.camOn ? "video" : "videoOff", c.camOn ? "Camera on" : "Camera off");
  s.cam.disabled = !c.videoSender || c.ended;
  if (c.cam && s.local.srcObject !== c.localStream) {
    c.localStream = new MediaStream([c.cam]);
    s.local.srcObject = c.localStream;
  }
  s.local.hidden = !c.camOn;
  if (c.remote && s.remote.srcObject !== c.remote) s.remote.srcObject = c.remote;
  const vt = c.remote && c.remote.getVideoTracks()[0];
  const hasVideo = !!(vt && !vt.muted && s.remote.videoWidth > 0);
  s.remote.hidden = !hasVideo;
  s.peerBox.hidden = hasVideo;
  s.peerBox.classList.toggle("ringing", c.state === "calling" || c.state === "ringing");
  s.controls.hidden = c.ended;
  s.after.hidden = !c.ended;
  s.again.hidden = c.direction !== "out" && !c.peer;
  if (c.ended) s.el.classList.add("ended");
  drawGraph(s, c.samples);
}

function toggle(btn, pressed, iconName, label) {
  if (btn.getAttribute("aria-pressed") === String(pressed) && btn.textContent === label) return;
  btn.setAttribute("aria-pressed", String(pressed));
  btn.replaceChildren(icon(iconName), h("span", { text: label }));
}

function drawGraph(s, samples) {
  const cv = s.canvas;
  const ctx = cv.getContext("2d");
  const W = cv.width, H = cv.height;
  ctx.clearRect(0, 0, W, H);
  ctx.strokeStyle = "rgba(255,255,255,0.12)";
  ctx.lineWidth = 1;
  for (let i = 1; i < 3; i++) { ctx.beginPath(); ctx.moveTo(0, (H * i) / 3); ctx.lineTo(W, (H * i) / 3); ctx.stroke(); }
  const series = [
    ["rtt", "#60a5fa", Math.max(100, ...samples.map((x) => x.rtt))],
    ["loss", "#f87171", Math.max(5, ...samples.map((x) => x.loss))],
    ["kbps", "#34d399", Math.max(64, ...samples.map((x) => x.up + x.down))],
  ];
  for (const [key, color, max] of series) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    samples.forEach((x, i) => {
      const v = key === "kbps" ? x.up + x.down : x[key];
      const px = W - (samples.length - 1 - i) * (W / 59);
      const py = H - 3 - (v / max) * (H - 6);
      if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.stroke();
  }
  const last = samples[samples.length - 1];
  s.legend.replaceChildren(
    h("span", { class: "lg rtt" }, "Round trip ", h("b", { text: last ? `${Math.round(last.rtt)} ms` : "—" })),
    h("span", { class: "lg loss" }, "Loss ", h("b", { text: last ? `${last.loss.toFixed(1)} %` : "—" })),
    h("span", { class: "lg kbps" }, "Bitrate ", h("b", { text: last ? `↑${Math.round(last.up)} ↓${Math.round(last.down)} kbit/s` : "—" })));
  s.canvas.setAttribute("aria-label", last ? `Call quality: round trip ${Math.round(last.rtt)} ms, loss ${last.loss.toFixed(1)} %, ${Math.round(last.up)} kbit/s up, ${Math.round(last.down)} kbit/s down` : "Call quality: no figures yet");
}

/** current is this tab's live call, for other views. */
export const current = () => cur;

init();
