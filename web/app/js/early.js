// early.js: a classic script, run as soon as the page's head is read,
// that asks the node for the first screen's data (GET /api/v1/app) while
// the app's modules are still loading. store.loadAll takes the answer.
// With a sign-in ticket in the address, or no token, it does nothing.
(function () {
  try {
    if (/(?:^#|&)ticket=/.test(location.hash)) return;
    var m = location.hash.match(/(?:^#|&)token=([0-9a-fA-F]+)/);
    var token = m ? m[1] : sessionStorage.getItem("callsign.token");
    if (!token) return;
    window.callsignBoot = fetch("/api/v1/app", { headers: { Authorization: "Bearer " + token } });
    window.callsignBoot.catch(function () {});
  } catch (e) { /* the app loads everything itself */ }
})();
