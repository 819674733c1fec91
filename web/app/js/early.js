// early.js: a classic script, run as soon as it arrives, that asks the
// node for the first screen's data (GET /api/v1/app) and parses it while
// the app's modules are still loading; store.loadAll takes the answer.
// With a sign-in ticket in the address, or no token, it does nothing. The
// node puts it into the page (api/webinline.go), allowed there by its hash:
// the page's CSP forbids any other inline script.
(function () {
  try {
    if (/(?:^#|&)ticket=/.test(location.hash)) return;
    var m = location.hash.match(/(?:^#|&)token=([0-9a-fA-F]+)/);
    var token = m ? m[1] : sessionStorage.getItem("callsign.token");
    if (!token) return;
    window.callsignBoot = fetch("/api/v1/app", { headers: { Authorization: "Bearer " + token } })
      .then(function (r) { return r.ok ? r.json() : null; });
    window.callsignBoot.catch(function () {});
  } catch (e) { /* the app loads everything itself */ }
})();
