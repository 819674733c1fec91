"use strict";
// The token travels in the address fragment (#token=...), which browsers
// never send to a server; it is kept in sessionStorage for this tab only.
(function () {
  const $ = (id) => document.getElementById(id);
  const m = location.hash.match(/token=([0-9a-f]+)/);
  if (m) { sessionStorage.setItem("token", m[1]); history.replaceState(null, "", "/"); }
  let token = sessionStorage.getItem("token");

  async function api(method, path, body) {
    const r = await fetch("/api/v1" + path, {
      method, headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await r.json();
    if (!r.ok) { throw new Error(data.error + (data.hint ? " — " + data.hint : "")); }
    return data;
  }
  function show(err) { $("error").textContent = err ? String(err.message || err) : ""; }
  function row(dl, k, v) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    dl.append(dt, dd);
  }

  async function refresh() {
    const [id, st, contacts] = await Promise.all([api("GET", "/id"), api("GET", "/status"), api("GET", "/contacts")]);
    $("me").textContent = id.handle;
    const dl = $("status"); dl.replaceChildren();
    row(dl, "account", id.account); row(dl, "peer", id.peer); row(dl, "peers", st.peers);
    row(dl, "routing table", st.routing_table); row(dl, "mode", st.public ? "public" : "private");
    row(dl, "encryption", st.encryption);
    const ul = $("contacts"); ul.replaceChildren();
    for (const c of contacts) {
      const li = document.createElement("li");
      li.textContent = c.petname + " (@" + c.handle + ") " + c.account;
      if (c.key_changed) { const w = document.createElement("span"); w.className = "warn"; w.textContent = " KEY CHANGED"; li.append(w); }
      ul.append(li);
    }
  }

  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault(); token = $("token").value.trim(); sessionStorage.setItem("token", token); start();
  });
  $("whois-form").addEventListener("submit", async (e) => {
    e.preventDefault(); show();
    try { $("whois-out").textContent = JSON.stringify(await api("GET", "/whois/" + encodeURIComponent($("whois-name").value)), null, 2); }
    catch (err) { show(err); }
  });
  $("claim-form").addEventListener("submit", async (e) => {
    e.preventDefault(); show(); $("claim-out").textContent = "claiming (proof of work, then a confirming read)…";
    try { const c = await api("POST", "/handles", { name: $("claim-name").value }); $("claim-out").textContent = "@" + c.name + ": " + c.status; refresh(); }
    catch (err) { $("claim-out").textContent = ""; show(err); }
  });

  async function start() {
    if (!token) { $("login").hidden = false; return; }
    try { await refresh(); $("login").hidden = true; $("app").hidden = false; show(); }
    catch (err) { $("login").hidden = false; show(err); }
  }
  start();
})();
