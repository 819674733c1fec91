// api.js: the thin client of the node's local API (/api/v1). Every call
// carries the bearer token; failures become ApiError with the node's
// {code, error, hint}, which the views show to the person as they are.

const TOKEN_KEY = "callsign.token";
let token = null;

/** Reads what the address fragment carries and strips it from the address
 * bar: a one-time sign-in ticket (#ticket=HEX, printed by `callsign up`
 * and `callsign web`), returned for redeemTicket, or a token (#token=HEX,
 * still taken). The token kept in this tab's sessionStorage, if any, is
 * loaded either way. */
export function initToken() {
  const t = location.hash.match(/(?:^#|&)ticket=([0-9a-fA-F]+)/);
  const m = location.hash.match(/(?:^#|&)token=([0-9a-fA-F]+)/);
  if (t || m) history.replaceState(history.state, "", location.pathname + location.search);
  if (m) sessionStorage.setItem(TOKEN_KEY, m[1]);
  token = sessionStorage.getItem(TOKEN_KEY);
  return t ? t[1] : null;
}

/** Exchanges a one-time sign-in ticket for the token (POST
 * /api/v1/session, the one route that takes no token) and keeps the token
 * for this tab. A used or expired ticket fails with ApiError 401, whose
 * hint says to run `callsign web`. */
export async function redeemTicket(ticket) {
  let r;
  try {
    r = await fetch("/api/v1/session", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ticket }),
    });
  } catch {
    throw new ApiError(0, "offline", "can't reach your node", "is `callsign up` still running?");
  }
  let body = {};
  try { body = await r.json(); } catch { /* not JSON after all */ }
  if (!r.ok || !body.token) throw new ApiError(r.status, body.code || "internal", body.error || `the node answered ${r.status}`, body.hint);
  setToken(body.token);
}

export function setToken(t) {
  token = t || null;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function hasToken() { return !!token; }

/** ApiError is a failed API call: status (0 when the node is unreachable),
 * code (bad_request, invalid_name, not_found, conflict, ...), message and
 * hint as the node wrote them. */
export class ApiError extends Error {
  constructor(status, code, message, hint) {
    super(message);
    this.status = status;
    this.code = code;
    this.hint = hint || "";
  }
}

function headers(json) {
  const h = { Authorization: "Bearer " + token };
  if (json) h["Content-Type"] = "application/json";
  return h;
}

async function request(method, path, body, opts = {}) {
  let r;
  try {
    r = await fetch(path.startsWith("/api/") ? path : "/api/v1" + path, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: opts.signal,
      keepalive: !!opts.keepalive,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "offline", "can't reach your node", "is `callsign up` still running?");
  }
  const type = r.headers.get("Content-Type") || "";
  if (!r.ok) {
    let e = {};
    if (type.includes("json")) { try { e = await r.json(); } catch { /* not JSON after all */ } }
    const err = new ApiError(r.status, e.code || "internal", e.error || `the node answered ${r.status}`, e.hint);
    // A refused token means signing in again, wherever it happens.
    if (r.status === 401) window.dispatchEvent(new CustomEvent("callsign:unauthorized", { detail: err }));
    throw err;
  }
  if (opts.blob) return r.blob();
  return type.includes("json") ? r.json() : null;
}

export const get = (path, opts) => request("GET", path, undefined, opts);
export const post = (path, body = {}, opts) => request("POST", path, body, opts);
export const del = (path) => request("DELETE", path);

/** file reads an attachment's bytes (GET of a message's file.url, which
 * starts with /api/v1) as a Blob. A file not on the node yet fails with
 * ApiError 503 "unavailable", and the node starts fetching it. */
export const file = (url, opts = {}) => request("GET", url, undefined, { ...opts, blob: true });

/** upload POSTs a multipart form (FormData) to path and returns the
 * answer's JSON. It is an XMLHttpRequest, not fetch, for the progress of
 * the upload: onProgress(sent, total) as the bytes leave. Aborted through
 * signal, it rejects with an AbortError. */
export function upload(path, form, { onProgress, signal } = {}) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("POST", "/api/v1" + path);
    x.setRequestHeader("Authorization", "Bearer " + token);
    x.responseType = "text";
    if (onProgress) x.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    x.onload = () => {
      let body = null;
      try { body = JSON.parse(x.responseText); } catch { /* not JSON after all */ }
      if (x.status >= 200 && x.status < 300) { resolve(body); return; }
      const e = body || {};
      const err = new ApiError(x.status, e.code || "internal", e.error || `the node answered ${x.status}`, e.hint);
      if (x.status === 401) window.dispatchEvent(new CustomEvent("callsign:unauthorized", { detail: err }));
      reject(err);
    };
    x.onerror = () => reject(new ApiError(0, "offline", "can't reach your node", "is `callsign up` still running?"));
    x.onabort = () => reject(new DOMException("upload cancelled", "AbortError"));
    if (signal) {
      if (signal.aborted) { reject(new DOMException("upload cancelled", "AbortError")); return; }
      signal.addEventListener("abort", () => x.abort(), { once: true });
    }
    x.send(form);
  });
}

/** seg encodes one path segment (a name, an account id, a call id). */
export const seg = encodeURIComponent;

const qrCache = new Map();

/** qrURL returns an object URL of a PNG QR code of text, made by the node. */
export function qrURL(text) {
  let p = qrCache.get(text);
  if (!p) {
    p = get("/qr?text=" + encodeURIComponent(text), { blob: true }).then((b) => URL.createObjectURL(b));
    p.catch(() => qrCache.delete(text));
    qrCache.set(text, p);
  }
  return p;
}

/** eventsURL is the event WebSocket's address: the one route that takes the
 * token as a query parameter, since browsers can't set headers on it. */
export function eventsURL() {
  return `ws://${location.host}/api/v1/events?token=${encodeURIComponent(token)}`;
}

/** hangupOnExit hangs a call up from a page that is going away. */
export function hangupOnExit(id) {
  try {
    fetch(`/api/v1/calls/${seg(id)}/hangup`, { method: "POST", keepalive: true, headers: headers(false) });
  } catch { /* the page is going away */ }
}
