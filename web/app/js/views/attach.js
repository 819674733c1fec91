// views/attach.js: attachments in a conversation, for chat.js. fileView
// is the part of a message's bubble that shows its file: a photo inline
// (its thumbnail first, then the file), a voice note or other audio with a
// player, a video with one, any other file as a chip with a download
// button; each with the state of its upload or download. makeThumb makes
// a photo's thumbnail before it is sent, and recordVoice records a voice
// note from the microphone.
//
// A file is read with the token (GET file.url), so media elements get
// object URLs of the bytes, revoked when the view goes. A file that isn't
// on this node yet answers 503 "unavailable" and the node fetches it; its
// progress comes as `file` events, and "ready" loads it.

import * as api from "../api.js";
import { h, icon, size, duration, fileKind, dialog } from "../ui.js";

/** AUTO_MAX is the size up to which media load by themselves; a larger one
 * waits for a click, as does everything in a message request. */
const AUTO_MAX = 32 << 20;

/** fileView shows m.file. opts: auto (load media by itself), local (the
 * Blob itself, when this tab has it: no download), onCancel (a "Cancel"
 * on the upload, for a message being sent). Returns {el, update(file),
 * event(ev), uploading(sent, total), destroy()}. */
export function fileView(m, { auto = true, local = null, onCancel = null } = {}) {
  let f = { ...m.file };
  const kind = fileKind(f);
  const ac = new AbortController();
  let url = ""; // object URL of the bytes, once here
  let loading = false;
  let again = false; // "ready" came while a read was on its way: read again
  let wanted = false; // the person asked for it (or it loads by itself)
  let saveWhenLoaded = false;
  let progress = null; // {have, total} of the download
  let failText = "";
  let upload = null; // {sent, total} while this tab uploads it

  const status = h("div", { class: "file-status" });
  let media = null; // the <img>, <audio> or <video>
  let el;
  const label = f.name || "file";

  if (kind === "image") {
    media = h("img", { class: "file-image" + (f.thumb ? " thumb" : " placeholder"), alt: label, src: f.thumb || null, decoding: "async" });
    const open = h("button", {
      type: "button", class: "file-open", "aria-label": `Open the photo ${label}`, title: label,
      on: { click: () => { if (url) viewer(url, label); else if (!loading) get(true); } },
    }, media);
    el = h("div", { class: "file file-photo" }, open, status);
  } else if (kind === "video") {
    media = h("video", { class: "file-video", controls: true, preload: "metadata", playsinline: true, poster: f.thumb || null, "aria-label": label });
    el = h("div", { class: "file file-movie" }, media, status);
  } else if (kind === "voice" || kind === "audio") {
    media = h("audio", { class: "file-audio", controls: true, preload: "metadata", "aria-label": kind === "voice" ? "Voice note" : label });
    fixDuration(media);
    el = h("div", { class: "file file-sound" + (kind === "voice" ? " voice" : "") },
      kind === "voice" ? h("span", { class: "file-voice-icon" }, icon("mic")) : null,
      h("div", { class: "file-sound-body" },
        kind === "audio" ? h("span", { class: "file-name", text: label }) : null,
        media,
        h("span", { class: "file-sub", text: kind === "voice" ? duration(f.duration_ms / 1000) : size(f.size) })),
      status);
  } else {
    const dl = h("button", {
      type: "button", class: "icon-btn file-download", "aria-label": `Download ${label}`, title: `Download (${size(f.size)})`,
      on: { click: () => { if (url) save(); else get(true, true); } },
    }, icon("download"));
    el = h("div", { class: "file-chip" },
      h("span", { class: "file-icon" }, icon("file"), h("span", { class: "file-ext", text: ext(label) })),
      h("span", { class: "file-info" }, h("span", { class: "file-name", text: label }), h("span", { class: "file-sub", text: `${size(f.size)}${ext(label) ? " · " + ext(label) : ""}` })),
      dl, status);
  }

  function setBlob(b) {
    if (url) URL.revokeObjectURL(url);
    url = URL.createObjectURL(b);
    failText = "";
    progress = null;
    if (media) {
      if (kind === "image") {
        media.addEventListener("load", () => media.classList.remove("thumb", "placeholder"), { once: true });
      }
      media.src = url;
    }
    if (saveWhenLoaded) { saveWhenLoaded = false; save(); }
    el.classList.add("loaded");
    draw();
  }

  // get reads the file from the node; a 503 means the node now fetches it.
  async function get(byPerson = false, andSave = false) {
    if (byPerson) wanted = true;
    if (andSave) saveWhenLoaded = true;
    if (loading || ac.signal.aborted) return;
    loading = true;
    again = false;
    failText = "";
    draw();
    try {
      setBlob(await api.file(f.url, { signal: ac.signal }));
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err.status === 503) {
        // Not here yet: the node fetches it, and says when it's ready.
        if (!again) f.state = "fetching";
        wanted = true;
      } else {
        f.state = "failed";
        failText = err.message;
      }
    } finally {
      loading = false;
    }
    if (again && !url) { get(); return; }
    draw();
  }

  function save() {
    const a = h("a", { href: url, download: label, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
  }

  function draw() {
    const parts = [];
    if (upload) {
      const pct = upload.total ? Math.floor((100 * upload.sent) / upload.total) : 0;
      parts.push(bar(pct), h("span", { class: "file-status-text", text: upload.sent >= upload.total && upload.total ? "Sending…" : `Uploading… ${pct}%` }));
      if (onCancel) parts.push(h("button", { type: "button", class: "link-btn", text: "Cancel", on: { click: onCancel } }));
    } else if (url) {
      // Nothing to say: the file is here.
    } else if (f.state === "failed" || failText) {
      parts.push(icon("alert"), h("span", { class: "file-status-text", text: "Couldn't download —", title: failText || null }),
        h("button", { type: "button", class: "link-btn", text: "retry", "aria-label": `Retry downloading ${label}`, on: { click: () => { f.state = "fetching"; progress = null; get(true); } } }));
    } else if (f.state === "fetching" || loading) {
      const pct = progress && progress.total ? Math.floor((100 * progress.have) / progress.total) : null;
      parts.push(pct === null ? bar(null) : bar(pct),
        h("span", { class: "file-status-text", text: pct === null ? (loading && f.state === "ready" ? "Loading…" : "Downloading…") : `Downloading… ${pct}% of ${size(progress.total)}` }));
    } else if (!wanted && kind !== "file") {
      parts.push(h("button", { type: "button", class: "btn small file-get", on: { click: () => get(true) } }, icon("download"), `Download · ${size(f.size)}`));
    }
    status.replaceChildren(...parts);
    status.hidden = !parts.length;
    el.classList.toggle("busy", !!(upload || (!url && (f.state === "fetching" || loading))));
  }

  if (local) setBlob(local);
  else if (auto && kind !== "file" && f.size <= AUTO_MAX) { wanted = true; if (f.state !== "failed") get(); }
  draw();

  return {
    el,
    /** update takes the message's file again (a page read after a
     * reconnect): a download that ended meanwhile shows. */
    update(nf) {
      const was = f.state;
      f = { ...f, ...nf };
      if (!url && was !== "ready" && f.state === "ready" && wanted) { if (loading) again = true; else get(); }
      draw();
    },
    /** event takes a `file` event of this message. */
    event(ev) {
      if (ev.state === "fetching") {
        f.state = "fetching";
        progress = { have: ev.have || 0, total: ev.total || f.size };
      } else if (ev.state === "ready") {
        f.state = "ready";
        progress = null;
        if (!url && wanted) { if (loading) again = true; else get(); }
      } else if (ev.state === "failed") {
        f.state = "failed";
        progress = null;
      }
      draw();
    },
    uploading(sent, total) { upload = sent === null ? null : { sent, total }; draw(); },
    destroy() {
      ac.abort();
      if (url) URL.revokeObjectURL(url);
      url = "";
      if (media && media.pause) media.pause();
    },
  };
}

function bar(pct) {
  const fill = h("span");
  if (pct !== null) fill.style.width = pct + "%";
  return h("span", { class: "bar" + (pct === null ? " indeterminate" : ""), "aria-hidden": "true" }, fill);
}

// ext is the file name's extension, as a tag on the chip: PDF, ZIP.
function ext(name) {
  const m = /\.([A-Za-z0-9]{1,5})$/.exec(name || "");
  return m ? m[1].toUpperCase() : "";
}

// fixDuration works around Chromium's recordings that carry no duration
// (a MediaRecorder WebM): it seeks to the end once, so the player learns
// the length, and back to the start.
function fixDuration(a) {
  a.addEventListener("loadedmetadata", () => {
    if (Number.isFinite(a.duration) || !a.paused) return;
    const back = () => {
      if (!Number.isFinite(a.duration)) return;
      a.removeEventListener("durationchange", back);
      a.currentTime = 0;
    };
    a.addEventListener("durationchange", back);
    a.currentTime = 1e7;
  });
}

// viewer shows a photo large, over the page.
function viewer(url, name) {
  dialog({
    label: name, cls: "viewer",
    build: (close) => h("div", { class: "viewer-body" },
      h("img", { src: url, alt: name }),
      h("div", { class: "viewer-bar" },
        h("span", { class: "viewer-name", text: name }),
        h("a", { class: "btn small", href: url, download: name }, icon("download"), "Download"),
        h("button", { type: "button", class: "btn small", on: { click: close } }, icon("x"), "Close"))),
  });
}

/** THUMB_MAX is the largest thumbnail a message carries (the API's limit). */
const THUMB_MAX = 16 << 10;

/** makeThumb makes a JPEG thumbnail of the photo (or video) file, its
 * longest side at most 160 px, under 16 KiB; null when it can't. */
export async function makeThumb(file) {
  try {
    let src, w, h0, done = () => {};
    if (file.type.startsWith("image/")) {
      src = await createImageBitmap(file);
      w = src.width; h0 = src.height;
      done = () => src.close();
    } else if (file.type.startsWith("video/")) {
      src = await videoFrame(file);
      w = src.videoWidth; h0 = src.videoHeight;
      done = () => { URL.revokeObjectURL(src.src); src.removeAttribute("src"); };
    } else return null;
    try {
      if (!w || !h0) return null;
      const k = Math.min(1, 160 / Math.max(w, h0));
      const c = document.createElement("canvas");
      c.width = Math.max(1, Math.round(w * k));
      c.height = Math.max(1, Math.round(h0 * k));
      const g = c.getContext("2d");
      g.fillStyle = "#fff"; // a transparent PNG on white, as JPEG has no alpha
      g.fillRect(0, 0, c.width, c.height);
      g.drawImage(src, 0, 0, c.width, c.height);
      for (const q of [0.8, 0.65, 0.5, 0.35, 0.2]) {
        const b = await new Promise((r) => c.toBlob(r, "image/jpeg", q));
        if (b && b.size <= THUMB_MAX) return b;
      }
      return null;
    } finally {
      done();
    }
  } catch {
    return null; // a file the browser can't decode goes without one
  }
}

// videoFrame loads a video far enough to draw a frame of it.
function videoFrame(file) {
  return new Promise((resolve, reject) => {
    const v = document.createElement("video");
    v.muted = true;
    v.preload = "auto";
    const t = setTimeout(() => { URL.revokeObjectURL(v.src); reject(new Error("timeout")); }, 4000);
    v.onloadeddata = () => { v.currentTime = Math.min(0.5, (v.duration || 1) / 2); };
    v.onseeked = () => { clearTimeout(t); resolve(v); };
    v.onerror = () => { clearTimeout(t); URL.revokeObjectURL(v.src); reject(new Error("can't decode")); };
    v.src = URL.createObjectURL(file);
  });
}

/** recordVoice starts recording from the microphone. onTick(ms) is called
 * as the time passes. Returns {stop(): Promise<{file, durationMs}>,
 * cancel()}; throws when there is no microphone or no permission. */
export async function recordVoice(onTick) {
  if (!navigator.mediaDevices || !window.MediaRecorder) throw new Error("this browser can't record audio");
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const type = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"].find((t) => MediaRecorder.isTypeSupported(t)) || "";
  let rec;
  try {
    rec = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
  } catch (err) {
    stream.getTracks().forEach((t) => t.stop());
    throw err;
  }
  const chunks = [];
  rec.ondataavailable = (e) => { if (e.data && e.data.size) chunks.push(e.data); };
  const started = new Promise((r) => { rec.onstart = r; });
  rec.start(250);
  await started;
  const t0 = performance.now();
  const timer = setInterval(() => onTick(performance.now() - t0), 200);
  onTick(0);

  const end = () => {
    clearInterval(timer);
    const stopped = new Promise((r) => { rec.onstop = r; });
    if (rec.state !== "inactive") rec.stop();
    else rec.onstop();
    stream.getTracks().forEach((t) => t.stop());
    return stopped;
  };
  return {
    async stop() {
      const ms = Math.round(performance.now() - t0);
      await end();
      const mime = (rec.mimeType || type || "audio/webm").split(";")[0].trim();
      const name = "voice-note." + ({ "audio/ogg": "ogg", "audio/mp4": "m4a" }[mime] || "webm");
      return { file: new File(chunks, name, { type: mime }), durationMs: ms };
    },
    cancel() { end(); },
  };
}

/** uploadError says in words why sending a file failed. */
export function uploadError(err) {
  if (err.code === "too_large") {
    const lim = /\d+(\.\d+)?\s*[KMGT]i?B/.exec(err.message || "");
    return lim ? `This file is over the ${lim[0]} limit.` : "This file is too large to send.";
  }
  return err.message + (err.hint ? " — " + err.hint : "");
}
