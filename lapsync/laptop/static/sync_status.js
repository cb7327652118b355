// Keeps the top bar's sync state fresh on pages that never reload (lap entry).
(function () {
  "use strict";
  var el = document.getElementById("sync-status");
  if (!el || !window.fetch) { return; }
  function refresh() {
    fetch(el.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) { return; }
        el.textContent = s.text;
        el.className = "sync-status sync-" + s.level;
        el.dataset.state = s.state;
      })
      .catch(function () { /* the laptop app itself is down: keep the last text */ });
  }
  setInterval(refresh, 5000);
})();
